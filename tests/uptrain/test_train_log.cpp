// TrainLog (JSONL + HDF5, resume, crash recovery) and ProgressBar. The HDF5 file is read back with
// the C API, independently of the writer's code paths.
#include "uptrain/train_log.h"

#if __has_include(<hdf5.h>)
#include <hdf5.h>
#else
#include <hdf5/serial/hdf5.h>  // Debian's serial HDF5 when its folder is not on the include path
#endif
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "gqa_train_log_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<json> read_jsonl(const std::string& dir) {
  std::vector<json> records;
  std::istringstream lines(read_text(dir + "/train_log.jsonl"));
  for (std::string line; std::getline(lines, line);) records.push_back(json::parse(line));
  return records;
}

std::vector<int64_t> steps_of_kind(const std::vector<json>& records, const std::string& kind) {
  std::vector<int64_t> steps;
  for (const json& record : records)
    if (record.at("kind") == kind) steps.push_back(record.at("step").get<int64_t>());
  return steps;
}

std::vector<double> as_doubles(const std::vector<int64_t>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// Element-wise equality where NaN equals NaN.
void expect_same(const std::vector<double>& actual, const std::vector<double>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i]))
      EXPECT_TRUE(std::isnan(actual[i])) << what << "[" << i << "] = " << actual[i];
    else
      EXPECT_EQ(actual[i], expected[i]) << what << "[" << i << "]";
  }
}

// Read-only view of train_log.h5 through the HDF5 C API.
class H5Reader {
 public:
  explicit H5Reader(const std::string& path) : file_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {}
  ~H5Reader() {
    if (file_ >= 0) H5Fclose(file_);
  }
  bool ok() const { return file_ >= 0; }
  bool exists(const std::string& path) const { return H5Lexists(file_, path.c_str(), H5P_DEFAULT) > 0; }
  size_t links_in(const std::string& group_path) const {
    const hid_t group = H5Gopen2(file_, group_path.c_str(), H5P_DEFAULT);
    H5G_info_t info{};
    H5Gget_info(group, &info);
    H5Gclose(group);
    return info.nlinks;
  }

  struct Dataset {
    std::vector<double> values;
    bool float64 = false, chunked = false, unlimited = false;
  };
  Dataset dataset(const std::string& path) const {
    Dataset result;
    const hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    if (dataset < 0) return result;
    const hid_t type = H5Dget_type(dataset);
    result.float64 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 8;
    H5Tclose(type);
    const hid_t space = H5Dget_space(dataset);
    hsize_t size = 0, max_size = 0;
    if (H5Sget_simple_extent_ndims(space) == 1) {
      H5Sget_simple_extent_dims(space, &size, &max_size);
      result.unlimited = max_size == H5S_UNLIMITED;
      result.values.resize(size);
      if (size > 0) H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, result.values.data());
    }
    H5Sclose(space);
    const hid_t properties = H5Dget_create_plist(dataset);
    result.chunked = H5Pget_layout(properties) == H5D_CHUNKED;
    H5Pclose(properties);
    H5Dclose(dataset);
    return result;
  }
  std::vector<double> values(const std::string& path) const { return dataset(path).values; }

  // Root attributes: the HDF5 type class tells what was written.
  H5T_class_t attribute_class(const std::string& name) const {
    if (H5Aexists(file_, name.c_str()) <= 0) return H5T_NO_CLASS;
    const hid_t attribute = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
    if (attribute < 0) return H5T_NO_CLASS;
    const hid_t type = H5Aget_type(attribute);
    const H5T_class_t type_class = H5Tget_class(type);
    H5Tclose(type);
    H5Aclose(attribute);
    return type_class;
  }
  double double_attribute(const std::string& name) const {
    double value = kNaN;
    read_attribute(name, H5T_NATIVE_DOUBLE, &value);
    return value;
  }
  int64_t int_attribute(const std::string& name) const {
    int64_t value = -12345;
    read_attribute(name, H5T_NATIVE_INT64, &value);
    return value;
  }
  std::string string_attribute(const std::string& name) const {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    char* text = nullptr;
    read_attribute(name, type, &text);
    H5Tclose(type);
    std::string value = text ? text : "<unreadable>";
    H5free_memory(text);
    return value;
  }

 private:
  void read_attribute(const std::string& name, hid_t memory_type, void* value) const {
    if (H5Aexists(file_, name.c_str()) <= 0) return;
    const hid_t attribute = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
    if (attribute < 0) return;
    H5Aread(attribute, memory_type, value);
    H5Aclose(attribute);
  }
  hid_t file_;
};

ino_t inode_of(const std::string& path) {
  struct stat info {};
  ::stat(path.c_str(), &info);
  return info.st_ino;
}

double loss_at(int64_t step, double run) { return 10.0 / double(step) + run; }

// Train records for steps [first, last]; `run` tells two runs' values apart.
void write_train(gqa::TrainLog& log, int64_t first, int64_t last, double run = 0) {
  for (int64_t step = first; step <= last; ++step)
    log.record("train", step, {{"loss", loss_at(step, run)}, {"lr", 1e-3 * double(step)}});
}

std::vector<double> expected_losses(int64_t last, int64_t resumed_after, double second_run) {
  std::vector<double> losses;
  for (int64_t step = 1; step <= last; ++step) losses.push_back(loss_at(step, step > resumed_after ? second_run : 0));
  return losses;
}

const json kConfig = {{"lr", 0.001}, {"max_steps", 1000}, {"model", "gpt2"}};

// ---------------------------------------------------------------------------------------------
// TrainLog: contents

TEST(TrainLog, JsonlHoldsOneObjectPerRecord) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path() + "/out/nested", kConfig);
    log.record("train", 12, {{"loss", 3.2}, {"lr", 9.8e-4}});
    log.record("valid", 12, {{"loss", 3.5}});
    log.record("train", 13, {{"loss", kNaN}});
  }
  const std::vector<json> records = read_jsonl(dir.path() + "/out/nested");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], json({{"kind", "train"}, {"step", 12}, {"loss", 3.2}, {"lr", 9.8e-4}}));
  EXPECT_EQ(records[1], json({{"kind", "valid"}, {"step", 12}, {"loss", 3.5}}));
  EXPECT_TRUE(records[2].at("loss").is_null()) << "JSON has no NaN";
  // "kind" and "step" lead each line, as in the documented format.
  EXPECT_EQ(read_text(dir.path() + "/out/nested/train_log.jsonl").rfind("{\"kind\":\"train\",\"step\":12,", 0), 0u);
}

TEST(TrainLog, Hdf5HasOneColumnPerScalarWithNanPadding) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    log.record("train", 1, {{"loss", 4.0}});
    log.record("train", 2, {{"loss", 3.5}});
    log.record("valid", 2, {{"loss", 3.9}, {"ppl", 49.4}});
    log.record("train", 3, {{"loss", 3.0}, {"grad_norm", 0.7}});  // appears late
    log.record("train", 4, {{"grad_norm", 0.5}});                 // loss missing
  }
  H5Reader h5(dir.path() + "/train_log.h5");
  ASSERT_TRUE(h5.ok());
  EXPECT_EQ(h5.links_in("/"), 2u);
  EXPECT_EQ(h5.links_in("/train"), 3u);
  const H5Reader::Dataset steps = h5.dataset("/train/step");
  EXPECT_TRUE(steps.float64);
  EXPECT_TRUE(steps.chunked);
  EXPECT_TRUE(steps.unlimited);
  expect_same(steps.values, {1, 2, 3, 4}, "train/step");
  expect_same(h5.values("/train/loss"), {4.0, 3.5, 3.0, kNaN}, "train/loss");
  expect_same(h5.values("/train/grad_norm"), {kNaN, kNaN, 0.7, 0.5}, "train/grad_norm");
  EXPECT_TRUE(h5.dataset("/train/grad_norm").unlimited);
  expect_same(h5.values("/valid/step"), {2}, "valid/step");
  expect_same(h5.values("/valid/loss"), {3.9}, "valid/loss");
  expect_same(h5.values("/valid/ppl"), {49.4}, "valid/ppl");
}

TEST(TrainLog, RunConfigBecomesRootAttributes) {
  TempDir dir;
  const json config = {{"lr", 0.001},  {"max_steps", 1000}, {"model", "gpt2"},        {"compile", true},
                       {"amp", false}, {"groups", {1, 2}},  {"optim", {{"b1", 0.9}}}, {"note", nullptr}};
  { gqa::TrainLog log(dir.path(), config); }
  H5Reader h5(dir.path() + "/train_log.h5");
  ASSERT_TRUE(h5.ok());
  EXPECT_EQ(json::parse(h5.string_attribute("run_config")), config);
  EXPECT_EQ(h5.attribute_class("lr"), H5T_FLOAT);
  EXPECT_EQ(h5.double_attribute("lr"), 0.001);
  EXPECT_EQ(h5.attribute_class("max_steps"), H5T_INTEGER);
  EXPECT_EQ(h5.int_attribute("max_steps"), 1000);
  EXPECT_EQ(h5.attribute_class("model"), H5T_STRING);
  EXPECT_EQ(h5.string_attribute("model"), "gpt2");
  EXPECT_EQ(h5.attribute_class("compile"), H5T_INTEGER);
  EXPECT_EQ(h5.int_attribute("compile"), 1);
  EXPECT_EQ(h5.int_attribute("amp"), 0);
  // Non-scalars and null live only in the JSON text.
  EXPECT_EQ(h5.attribute_class("groups"), H5T_NO_CLASS);
  EXPECT_EQ(h5.attribute_class("optim"), H5T_NO_CLASS);
  EXPECT_EQ(h5.attribute_class("note"), H5T_NO_CLASS);
}

TEST(TrainLog, FlushedFileIsReadableWhileTheLogIsOpen) {
  TempDir dir;
  gqa::TrainLog log(dir.path(), kConfig);
  write_train(log, 1, 3);
  log.flush();
  // A copy of what is on disk after flush() is what a kill would leave: it must be complete.
  fs::copy_file(dir.path() + "/train_log.h5", dir.path() + "/snapshot.h5");
  H5Reader h5(dir.path() + "/snapshot.h5");
  ASSERT_TRUE(h5.ok());
  expect_same(h5.values("/train/step"), {1, 2, 3}, "train/step");
  EXPECT_EQ(steps_of_kind(read_jsonl(dir.path()), "train"), (std::vector<int64_t>{1, 2, 3}));
}

TEST(TrainLog, NewRunReplacesOldLogs) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 5);
    log.record("valid", 5, {{"loss", 1}});
  }
  {
    gqa::TrainLog log(dir.path(), {{"model", "other"}});
    write_train(log, 1, 2);
  }
  EXPECT_EQ(steps_of_kind(read_jsonl(dir.path()), "train"), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(steps_of_kind(read_jsonl(dir.path()), "valid").empty());
  H5Reader h5(dir.path() + "/train_log.h5");
  expect_same(h5.values("/train/step"), {1, 2}, "train/step");
  EXPECT_FALSE(h5.exists("/valid"));
  EXPECT_EQ(h5.string_attribute("model"), "other");
  EXPECT_EQ(h5.attribute_class("max_steps"), H5T_NO_CLASS) << "stale attribute of the old config";
}

TEST(TrainLog, BadNamesAreRejected) {
  TempDir dir;
  gqa::TrainLog log(dir.path(), kConfig);
  EXPECT_THROW(log.record("", 1, {{"loss", 1}}), std::invalid_argument);
  EXPECT_THROW(log.record("a/b", 1, {{"loss", 1}}), std::invalid_argument);
  EXPECT_THROW(log.record("train", 1, {{"step", 1}}), std::invalid_argument);
  EXPECT_THROW(log.record("train", 1, {{"kind", 1}}), std::invalid_argument);
}

TEST(TrainLog, UncreatableFolderIsAnInputError) {
  TempDir dir;
  std::ofstream(dir.path() + "/file") << "x";
  try {
    gqa::TrainLog log(dir.path() + "/file/sub", kConfig);
    FAIL() << "expected InputError";
  } catch (const gqa::InputError& error) {
    EXPECT_EQ(error.file(), dir.path() + "/file/sub");
  }
}

// ---------------------------------------------------------------------------------------------
// TrainLog: resume

TEST(TrainLog, ResumeDropsRecordsAfterTheResumeStep) {
  TempDir dir;
  const std::string h5_path = dir.path() + "/train_log.h5";
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 10);
    log.record("valid", 3, {{"loss", kNaN}});  // NaN in a kept record must not force a rebuild
    log.record("valid", 5, {{"loss", 2.5}});
    log.record("valid", 10, {{"loss", 2.0}});
  }
  const ino_t inode_before = inode_of(h5_path);
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/6);
    write_train(log, 7, 8, /*run=*/100);
  }
  const std::vector<json> records = read_jsonl(dir.path());
  EXPECT_EQ(steps_of_kind(records, "train"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(steps_of_kind(records, "valid"), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(records.back().at("loss").get<double>(), loss_at(8, 100));

  EXPECT_EQ(inode_of(h5_path), inode_before) << "a consistent file is cut in place, not rebuilt";
  H5Reader h5(h5_path);
  ASSERT_TRUE(h5.ok());
  expect_same(h5.values("/train/step"), {1, 2, 3, 4, 5, 6, 7, 8}, "train/step");
  expect_same(h5.values("/train/loss"), expected_losses(8, 6, 100), "train/loss");
  EXPECT_EQ(h5.values("/train/lr").size(), 8u);
  expect_same(h5.values("/valid/step"), {3, 5}, "valid/step");
  expect_same(h5.values("/valid/loss"), {kNaN, 2.5}, "valid/loss");
}

TEST(TrainLog, ResumedLogsEqualAnUninterruptedRun) {
  // Scalars and kinds that only dropped records had must not survive the resume.
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 8);
    log.record("train", 9, {{"loss", 1.0}, {"grad_norm", 0.3}});
    log.record("eval", 9, {{"acc", 0.5}});
  }
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/8);
    log.record("train", 9, {{"loss", 1.5}});
  }
  H5Reader h5(dir.path() + "/train_log.h5");
  ASSERT_TRUE(h5.ok());
  EXPECT_FALSE(h5.exists("/eval"));
  EXPECT_FALSE(h5.exists("/train/grad_norm"));
  expect_same(h5.values("/train/step"), as_doubles({1, 2, 3, 4, 5, 6, 7, 8, 9}), "train/step");
  EXPECT_EQ(h5.values("/train/loss").back(), 1.5);
  EXPECT_TRUE(steps_of_kind(read_jsonl(dir.path()), "eval").empty());
}

TEST(TrainLog, TrailingPartialJsonlLineIsDropped) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 5);
  }
  std::ofstream(dir.path() + "/train_log.jsonl", std::ios::app) << "{\"kind\":\"train\",\"st";
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/5);
    write_train(log, 6, 6);
  }
  // read_jsonl parses every line: a merged or partial line would throw here.
  EXPECT_EQ(steps_of_kind(read_jsonl(dir.path()), "train"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  expect_same(H5Reader(dir.path() + "/train_log.h5").values("/train/step"), {1, 2, 3, 4, 5, 6}, "train/step");
}

TEST(TrainLog, MalformedLineBeforeTheEndIsAnInputError) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 1);
  }
  std::ofstream(dir.path() + "/train_log.jsonl", std::ios::app)
      << "not json\n"
      << json({{"kind", "train"}, {"step", 2}, {"loss", 1}}).dump() << "\n";
  try {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/5);
    FAIL() << "expected InputError";
  } catch (const gqa::InputError& error) {
    EXPECT_EQ(error.file(), dir.path() + "/train_log.jsonl");
    EXPECT_EQ(error.field(), "line 2");
  }
}

// read_train_log: the records as written, non-finite values as NaN; a partial last line is
// dropped and a malformed one before the end named by its line; a missing file is an empty log.
TEST(TrainLog, ReaderReturnsTheRecordsAsWritten) {
  TempDir dir;
  EXPECT_TRUE(gqa::read_train_log(gqa::train_log_path(dir.path())).empty());
  {
    gqa::TrainLog log(dir.path(), kConfig);
    log.record("train", 12, {{"loss", 3.2}, {"lr", 9.8e-4}});
    log.record("valid", 12, {{"loss", 3.5}});
    log.record("train", 13, {{"loss", kNaN}});
  }
  const std::string path = gqa::train_log_path(dir.path());
  EXPECT_EQ(path, dir.path() + "/train_log.jsonl");
  std::ofstream(path, std::ios::app) << "{\"kind\":\"train\",\"st";
  const std::vector<gqa::TrainLogRecord> records = gqa::read_train_log(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].kind, "train");
  EXPECT_EQ(records[0].step, 12);
  EXPECT_EQ(records[0].scalars, (std::map<std::string, double>{{"loss", 3.2}, {"lr", 9.8e-4}}));
  EXPECT_EQ(records[1].kind, "valid");
  EXPECT_EQ(records[1].scalars.at("loss"), 3.5);
  EXPECT_EQ(records[2].step, 13);
  EXPECT_TRUE(std::isnan(records[2].scalars.at("loss")));

  std::ofstream(path, std::ios::app) << "\n" << json({{"kind", "train"}, {"step", 14}, {"loss", 1}}).dump() << "\n";
  try {
    gqa::read_train_log(path);
    FAIL() << "expected InputError";
  } catch (const gqa::InputError& error) {
    EXPECT_EQ(error.file(), path);
    EXPECT_EQ(error.field(), "line 4");
  }
}

TEST(TrainLog, CorruptedHdf5IsRebuiltFromJsonl) {
  TempDir dir;
  const std::string h5_path = dir.path() + "/train_log.h5";
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 10);
    log.record("valid", 4, {{"loss", 2.5}});
  }
  fs::resize_file(h5_path, 8);
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/6);
    write_train(log, 7, 7, /*run=*/100);
  }
  H5Reader h5(h5_path);
  ASSERT_TRUE(h5.ok());
  expect_same(h5.values("/train/step"), {1, 2, 3, 4, 5, 6, 7}, "train/step");
  expect_same(h5.values("/train/loss"), expected_losses(7, 6, 100), "train/loss");
  expect_same(h5.values("/valid/loss"), {2.5}, "valid/loss");
  EXPECT_TRUE(h5.dataset("/train/loss").unlimited);
  EXPECT_EQ(h5.string_attribute("model"), "gpt2");
}

TEST(TrainLog, MissingHdf5IsRebuiltFromJsonl) {
  TempDir dir;
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 4);
  }
  fs::remove(dir.path() + "/train_log.h5");
  { gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/4); }
  expect_same(H5Reader(dir.path() + "/train_log.h5").values("/train/step"), {1, 2, 3, 4}, "train/step");
}

TEST(TrainLog, Hdf5BehindTheJsonlIsRebuilt) {
  // A kill can leave the HDF5 file with fewer rows than the JSONL (never flushed).
  TempDir dir;
  const std::string h5_path = dir.path() + "/train_log.h5";
  {
    gqa::TrainLog log(dir.path(), kConfig);
    write_train(log, 1, 5);
  }
  fs::copy_file(h5_path, dir.path() + "/stale.h5");
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/5);
    write_train(log, 6, 10);
  }
  fs::rename(dir.path() + "/stale.h5", h5_path);
  { gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/8); }
  H5Reader h5(h5_path);
  expect_same(h5.values("/train/step"), {1, 2, 3, 4, 5, 6, 7, 8}, "train/step");
  expect_same(h5.values("/train/loss"), expected_losses(8, 8, 0), "train/loss");
}

TEST(TrainLog, KilledRunResumesFromItsLastFlush) {
  TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      gqa::TrainLog log(dir.path(), kConfig);
      write_train(log, 1, 5);
      log.flush();  // the checkpoint at step 5
      write_train(log, 6, 9);
      ::kill(::getpid(), SIGKILL);
    } catch (...) {}
    ::_exit(3);  // never back into the test runner
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  {
    gqa::TrainLog log(dir.path(), kConfig, /*resume_step=*/5);
    write_train(log, 6, 7, /*run=*/100);
  }
  EXPECT_EQ(steps_of_kind(read_jsonl(dir.path()), "train"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  H5Reader h5(dir.path() + "/train_log.h5");
  ASSERT_TRUE(h5.ok());
  expect_same(h5.values("/train/step"), {1, 2, 3, 4, 5, 6, 7}, "train/step");
  expect_same(h5.values("/train/loss"), expected_losses(7, 5, 100), "train/loss");
}

// ---------------------------------------------------------------------------------------------
// ProgressBar

TEST(ProgressBar, TtyRedrawsOneLine) {
  std::ostringstream out;
  gqa::ProgressBar bar(1000, out, /*tty=*/true);
  bar.update(370, 12345, 3.2141, 9.8e-4);
  const std::string first = out.str();
  EXPECT_EQ(first.front(), '\r');
  EXPECT_NE(first.find("  37% |"), std::string::npos) << first;
  EXPECT_NE(first.find("370/1000"), std::string::npos) << first;
  EXPECT_NE(first.find("12.3K tok/s"), std::string::npos) << first;
  EXPECT_NE(first.find("loss 3.214"), std::string::npos) << first;
  EXPECT_NE(first.find("lr 9.8e-04"), std::string::npos) << first;
  EXPECT_NE(first.find("ETA"), std::string::npos) << first;
  EXPECT_EQ(first.find('\n'), std::string::npos);
  EXPECT_LE(first.size() - 1, 79u);

  bar.update(371, 12345, 3.2, 9.8e-4);  // within 0.1 s of the last redraw: skipped
  EXPECT_EQ(out.str(), first);
  bar.update(1000, 12345, 3.0, 1e-4);  // the final step is always drawn
  EXPECT_NE(out.str().find("1000/1000"), std::string::npos);
  EXPECT_NE(out.str().find(" 100% |"), std::string::npos);
  EXPECT_EQ(out.str().find('\n'), std::string::npos);
  bar.finish();
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(ProgressBar, TtyMessageGoesAboveTheBar) {
  std::ostringstream out;
  gqa::ProgressBar bar(1000, out, /*tty=*/true);
  bar.update(10, 100, 3.0, 1e-3);
  const size_t before = out.str().size();
  bar.message("step 10: valid loss 2.9");
  const std::string after = out.str().substr(before);
  // Cleared with \r + spaces, the line, then the bar again.
  EXPECT_EQ(after.rfind("\r", 0), 0u);
  const size_t line_at = after.find("step 10: valid loss 2.9\n");
  ASSERT_NE(line_at, std::string::npos) << after;
  EXPECT_NE(after.find("10/1000", line_at), std::string::npos) << after;
}

TEST(ProgressBar, FinishDrawsTheLatestRateLimitedState) {
  std::ostringstream out;
  gqa::ProgressBar bar(1000, out, /*tty=*/true);
  bar.update(5, 100, 3.0, 1e-3);
  bar.update(6, 100, 3.0, 1e-3);  // rate-limited
  EXPECT_EQ(out.str().find("6/1000"), std::string::npos);
  bar.finish();
  EXPECT_NE(out.str().find("6/1000"), std::string::npos);
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(ProgressBar, NotATtyOnlyPrintsMessages) {
  std::ostringstream out;
  gqa::ProgressBar bar(1000, out, /*tty=*/false);
  bar.update(370, 12345, 3.2, 9.8e-4);
  bar.update(1000, 12345, 3.2, 9.8e-4);
  EXPECT_EQ(out.str(), "");
  bar.message("checkpoint saved");
  EXPECT_EQ(out.str(), "checkpoint saved\n");
  bar.finish();
  EXPECT_EQ(out.str(), "checkpoint saved\n");
}

TEST(ProgressBar, EtaAndWidth) {
  EXPECT_NE(gqa::ProgressBar::format_line(370, 1000, 12300, 3.2, 1e-3, 83).find("ETA 01:23"), std::string::npos);
  EXPECT_NE(gqa::ProgressBar::format_line(1, 1000, 0, 3.2, 1e-3, -1).find("ETA --:--"), std::string::npos);
  // Token rates as format_count writes them (whole below a thousand, then K / M / B); "-" when unknown.
  EXPECT_NE(gqa::ProgressBar::format_line(1, 1000, 999, 3.2, 1e-3, 1).find("  999 tok/s"), std::string::npos);
  EXPECT_NE(gqa::ProgressBar::format_line(1, 1000, 1.26e6, 3.2, 1e-3, 1).find("1.26M tok/s"), std::string::npos);
  EXPECT_NE(gqa::ProgressBar::format_line(1, 1000, 3.5e9, 3.2, 1e-3, 1).find("3.50B tok/s"), std::string::npos);
  EXPECT_NE(gqa::ProgressBar::format_line(1, 1000, -1, 3.2, 1e-3, 1).find("    - tok/s"), std::string::npos);
  // Large numbers still fit in 80 columns (the bar gives way first).
  const std::string wide = gqa::ProgressBar::format_line(1234567, 9999999, 9.87e8, 12.345, 1.5e-10, 3.6e6);
  EXPECT_LE(wide.size(), 79u) << wide;
  EXPECT_NE(wide.find("1234567/9999999"), std::string::npos) << wide;
  EXPECT_NE(wide.find("ETA 1000:00:00"), std::string::npos) << wide;
  EXPECT_LE(gqa::ProgressBar::format_line(1, 2, 1e20, -1.2345e300, 1e-300, 1e12).size(), 79u);
}

TEST(ProgressBar, StderrTtyFollowsTerm) {
  const char* saved = std::getenv("TERM");
  const std::string saved_value = saved ? saved : "";
  ::setenv("TERM", "dumb", 1);
  EXPECT_FALSE(gqa::ProgressBar::stderr_is_tty());
  ::setenv("TERM", "xterm", 1);
  EXPECT_EQ(gqa::ProgressBar::stderr_is_tty(), ::isatty(2) == 1);
  if (saved)
    ::setenv("TERM", saved_value.c_str(), 1);
  else
    ::unsetenv("TERM");
}

}  // namespace
