// Training logs (JSONL + HDF5) and the terminal progress bar. Plain POSIX calls for files: this
// library ends up in binaries that link LibTorch, where std::filesystem is unsafe (core/files.h).
#include "uptrain/train_log.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/format.h"

namespace gqa {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr hsize_t kChunkRows = 1024;  // 8 KiB chunks: one per ~1000 records of a kind
const char* const kStepName = "step";
const char* const kRunConfigAttribute = "run_config";

std::string system_reason() { return std::strerror(errno); }

// ---------------------------------------------------------------------------------------------
// Files

void make_directories(const std::string& dir) {
  if (!files::make_directories(dir))
    throw InputError(dir, "",
                     files::exists(dir) ? "cannot create the folder: a file is in the way"
                                        : "cannot create the folder: " + system_reason());
}

bool write_all(int fd, const std::string& data) {
  for (size_t written = 0; written < data.size();) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += size_t(n);
  }
  return true;
}

void sync_path(const std::string& path) {
  const std::string reason = files::sync(path);
  if (!reason.empty()) throw InputError(path, "", "cannot sync to disk: " + reason);
}

// Renames `from` over `to` and makes the rename itself durable.
void commit_rename(const std::string& from, const std::string& to, const std::string& dir) {
  const std::string reason = files::rename(from, to);
  if (!reason.empty()) throw InputError(to, "", "cannot rename " + from + " into place: " + reason);
  sync_path(dir);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string reason = files::write_file_atomically(path, text);
  if (!reason.empty()) throw InputError(path, "", reason);
}

// ---------------------------------------------------------------------------------------------
// JSONL records

struct Record : TrainLogRecord {
  std::string line;  // the text as read, without the newline
};

// nullopt when the line is not a record this class writes.
std::optional<Record> parse_record(const std::string& line) {
  const nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  const auto kind = json.find("kind");
  const auto step = json.find("step");
  if (kind == json.end() || !kind->is_string() || step == json.end() || !step->is_number_integer()) return std::nullopt;
  Record record;
  record.kind = kind->get<std::string>();
  record.step = step->get<int64_t>();
  record.line = line;
  for (const auto& [name, value] : json.items()) {
    if (name == "kind" || name == kStepName) continue;
    if (value.is_number())
      record.scalars[name] = value.get<double>();
    else if (value.is_null())  // how non-finite values are written
      record.scalars[name] = kNaN;
    else
      return std::nullopt;
  }
  return record;
}

struct JsonlContents {
  std::vector<Record> records;
  bool needs_rewrite = false;  // a partial last line was dropped, or the newline is missing
};

// A line that does not parse is what a kill mid-write leaves, so it is dropped when nothing valid
// follows it; anywhere else it is an error.
JsonlContents read_jsonl(const std::string& path) {
  JsonlContents contents;
  std::ifstream in(path, std::ios::binary);
  if (!in) return contents;  // a missing log is an empty one
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  contents.needs_rewrite = !text.empty() && text.back() != '\n';

  int64_t first_bad_line = 0;
  int64_t line_number = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<Record> record = parse_record(line);
    if (!record) {
      if (first_bad_line == 0) first_bad_line = line_number;
      continue;
    }
    if (first_bad_line != 0)
      throw InputError(path, "line " + std::to_string(first_bad_line),
                       "not a training-log record (expected {\"kind\":...,\"step\":...,...})");
    contents.records.push_back(std::move(*record));
  }
  if (first_bad_line != 0) contents.needs_rewrite = true;
  return contents;
}

// What the HDF5 group of one kind holds: a "step" column and one column per scalar name, padded
// with NaN where a record lacks the scalar.
struct KindColumns {
  std::vector<double> steps;
  std::map<std::string, std::vector<double>> values;

  void append(int64_t step, const std::map<std::string, double>& scalars) {
    for (const auto& scalar : scalars)
      if (!values.count(scalar.first)) values.emplace(scalar.first, std::vector<double>(steps.size(), kNaN));
    for (auto& [name, column] : values) {
      const auto found = scalars.find(name);
      column.push_back(found == scalars.end() ? kNaN : found->second);
    }
    steps.push_back(double(step));
  }
};

std::map<std::string, KindColumns> columns_of(const std::vector<Record>& records) {
  std::map<std::string, KindColumns> kinds;
  for (const Record& record : records) kinds[record.kind].append(record.step, record.scalars);
  return kinds;
}

bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

void check_name(const std::string& name, const char* what) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == kStepName || name == "kind")
    throw std::invalid_argument(std::string("TrainLog: bad ") + what + " name \"" + name +
                                "\" (empty, contains '/', or reserved)");
}

// ---------------------------------------------------------------------------------------------
// HDF5

// Owns one HDF5 identifier.
class Hid {
 public:
  Hid() = default;
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Hid(Hid&& other) noexcept { *this = std::move(other); }
  Hid& operator=(Hid&& other) noexcept {
    std::swap(id_, other.id_);
    std::swap(close_, other.close_);
    return *this;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Failures are reported by our exceptions (or handled, for a damaged file), so HDF5's own error
// stack printing is off while our calls run.
class QuietHdf5Errors {
 public:
  QuietHdf5Errors() {
    H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, function_, data_); }
  QuietHdf5Errors(const QuietHdf5Errors&) = delete;
  QuietHdf5Errors& operator=(const QuietHdf5Errors&) = delete;

 private:
  H5E_auto2_t function_ = nullptr;
  void* data_ = nullptr;
};

// Thrown by the helpers below; callers turn it into InputError or a rebuild.
struct Hdf5Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Hid checked(hid_t id, herr_t (*close)(hid_t), const std::string& what) {
  if (id < 0) throw Hdf5Failure("cannot " + what);
  return Hid(id, close);
}

void checked(herr_t status, const std::string& what) {
  if (status < 0) throw Hdf5Failure("cannot " + what);
}

Hid file_access_properties() {
  Hid fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "create file-access properties");
#if H5_VERSION_GE(1, 10, 7)
  // Lock as usual, but work on file systems without locks (some network mounts).
  H5Pset_file_locking(fapl.get(), true, true);
#endif
  return fapl;
}

Hid open_file_for_writing(const std::string& path) {
  Hid fapl = file_access_properties();
  return checked(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose, "open " + path);
}

// A 1-D, chunked, extendible float64 dataset whose unwritten rows read as NaN.
Hid create_column(hid_t group, const std::string& name, const std::vector<double>& rows) {
  const hsize_t size = rows.size();
  const hsize_t max_size = H5S_UNLIMITED;
  Hid space = checked(H5Screate_simple(1, &size, &max_size), H5Sclose, "create a dataspace");
  Hid properties = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "create dataset properties");
  checked(H5Pset_chunk(properties.get(), 1, &kChunkRows), "set the chunk size");
  checked(H5Pset_fill_value(properties.get(), H5T_NATIVE_DOUBLE, &kNaN), "set the fill value");
  Hid dataset =
      checked(H5Dcreate2(group, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT),
              H5Dclose, "create dataset " + name);
  if (!rows.empty())
    checked(H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()),
            "write dataset " + name);
  return dataset;
}

void set_rows(hid_t dataset, hsize_t rows) { checked(H5Dset_extent(dataset, &rows), "resize a dataset"); }

void write_row(hid_t dataset, hsize_t row, double value) {
  const hsize_t one = 1;
  Hid file_space = checked(H5Dget_space(dataset), H5Sclose, "get a dataspace");
  checked(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &row, nullptr, &one, nullptr), "select a row");
  Hid memory_space = checked(H5Screate_simple(1, &one, nullptr), H5Sclose, "create a dataspace");
  checked(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), H5P_DEFAULT, &value),
          "write a row");
}

// The first `rows` values of a 1-D float dataset; nullopt when it is missing, of another shape or
// type, or shorter.
std::optional<std::vector<double>> read_column_prefix(hid_t group, const std::string& name, hsize_t rows) {
  if (H5Lexists(group, name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  Hid dataset = checked(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose, "open " + name);
  Hid type = checked(H5Dget_type(dataset.get()), H5Tclose, "get a type");
  Hid space = checked(H5Dget_space(dataset.get()), H5Sclose, "get a dataspace");
  hsize_t size = 0;
  if (H5Tget_class(type.get()) != H5T_FLOAT || H5Sget_simple_extent_ndims(space.get()) != 1 ||
      H5Sget_simple_extent_dims(space.get(), &size, nullptr) != 1 || size < rows)
    return std::nullopt;
  std::vector<double> values(rows);
  if (rows == 0) return values;
  const hsize_t start = 0;
  checked(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &rows, nullptr), "select rows");
  Hid memory_space = checked(H5Screate_simple(1, &rows, nullptr), H5Sclose, "create a dataspace");
  checked(H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, memory_space.get(), space.get(), H5P_DEFAULT, values.data()),
          "read " + name);
  return values;
}

hsize_t link_count(hid_t group) {
  H5G_info_t info;
  checked(H5Gget_info(group, &info), "read a group");
  return info.nlinks;
}

// True when the file at `path` holds `expected` as a prefix of each column and nothing else (the
// state after a clean run that went past the resume step); it is then cut to `expected`.
bool truncate_to(const std::string& path, const std::map<std::string, KindColumns>& expected) {
  if (!files::is_regular_file(path)) return false;
  try {
    Hid file = open_file_for_writing(path);
    if (link_count(file.get()) != expected.size()) return false;
    std::vector<Hid> datasets;  // checked, to be cut once everything matched
    std::vector<hsize_t> kept_rows;
    for (const auto& [kind, columns] : expected) {
      if (H5Lexists(file.get(), kind.c_str(), H5P_DEFAULT) <= 0) return false;
      Hid group = checked(H5Gopen2(file.get(), kind.c_str(), H5P_DEFAULT), H5Gclose, "open " + kind);
      if (link_count(group.get()) != columns.values.size() + 1) return false;
      const hsize_t rows = columns.steps.size();
      auto check = [&](const std::string& name, const std::vector<double>& want) {
        const auto have = read_column_prefix(group.get(), name, rows);
        if (!have || !same_values(*have, want)) return false;
        datasets.push_back(checked(H5Dopen2(group.get(), name.c_str(), H5P_DEFAULT), H5Dclose, "open " + name));
        kept_rows.push_back(rows);
        return true;
      };
      if (!check(kStepName, columns.steps)) return false;
      for (const auto& [name, column] : columns.values)
        if (!check(name, column)) return false;
    }
    for (size_t i = 0; i < datasets.size(); ++i) set_rows(datasets[i].get(), kept_rows[i]);
    checked(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "flush " + path);
    return true;
  } catch (const Hdf5Failure&) {
    return false;  // unreadable: rebuilt by the caller
  }
}

// Writes `kinds` to a fresh file at `path` (through a temp file).
void rebuild(const std::string& path, const std::string& dir, const std::map<std::string, KindColumns>& kinds) {
  const std::string temp = path + ".tmp";
  try {
    Hid fapl = file_access_properties();
    Hid file = checked(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, "create the file");
    for (const auto& [kind, columns] : kinds) {
      Hid group = checked(H5Gcreate2(file.get(), kind.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                          "create group " + kind);
      create_column(group.get(), kStepName, columns.steps);
      for (const auto& [name, column] : columns.values) create_column(group.get(), name, column);
    }
  } catch (const Hdf5Failure& failure) {
    throw InputError(temp, "", failure.what());
  }
  sync_path(temp);
  commit_rename(temp, path, dir);
}

herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* names) {
  static_cast<std::vector<std::string>*>(names)->push_back(name);
  return 0;
}

void write_attribute(hid_t object, const std::string& name, hid_t file_type, hid_t memory_type, const void* value) {
  Hid space = checked(H5Screate(H5S_SCALAR), H5Sclose, "create a dataspace");
  Hid attribute = checked(H5Acreate2(object, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                          "create attribute " + name);
  checked(H5Awrite(attribute.get(), memory_type, value), "write attribute " + name);
}

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  Hid type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "copy a type");
  checked(H5Tset_size(type.get(), H5T_VARIABLE), "size a string type");
  checked(H5Tset_cset(type.get(), H5T_CSET_UTF8), "set a character set");
  const char* text = value.c_str();
  write_attribute(object, name, type.get(), type.get(), &text);
}

// Replaces the root attributes with the run config: its JSON text, and each top-level scalar.
void write_run_config(hid_t file, const nlohmann::json& run_config) {
  std::vector<std::string> old_names;
  checked(H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, collect_attribute_name, &old_names),
          "list attributes");
  for (const std::string& name : old_names) checked(H5Adelete(file, name.c_str()), "delete " + name);

  write_string_attribute(file, kRunConfigAttribute, run_config.dump());
  if (!run_config.is_object()) return;
  for (const auto& [name, value] : run_config.items()) {
    if (name.empty() || name == kRunConfigAttribute) continue;
    if (value.is_string()) {
      write_string_attribute(file, name, value.get<std::string>());
    } else if (value.is_boolean()) {
      const int64_t flag = value.get<bool>() ? 1 : 0;
      write_attribute(file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &flag);
    } else if (value.is_number_integer() &&
               !(value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX))) {
      const int64_t number = value.get<int64_t>();
      write_attribute(file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &number);
    } else if (value.is_number()) {
      const double number = value.get<double>();
      write_attribute(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &number);
    }  // null, arrays and objects live in the run_config text only
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading

std::string train_log_path(const std::string& dir) { return dir + "/train_log.jsonl"; }

std::vector<TrainLogRecord> read_train_log(const std::string& path) {
  const JsonlContents contents = read_jsonl(path);
  return {contents.records.begin(), contents.records.end()};
}

// ---------------------------------------------------------------------------------------------
// TrainLog

struct OpenKind {
  Hid group;
  std::map<std::string, Hid> columns;  // "step" and each scalar name
  hsize_t rows = 0;
};

struct TrainLog::Impl {
  std::string jsonl_path, h5_path;
  int jsonl_fd = -1;
  Hid file;
  std::map<std::string, OpenKind> kinds;  // declared after `file`: closed before it

  ~Impl() {
    if (jsonl_fd >= 0) ::close(jsonl_fd);
  }

  OpenKind& open_kind(const std::string& kind) {
    auto found = kinds.find(kind);
    if (found != kinds.end()) return found->second;
    OpenKind opened;
    opened.group = checked(H5Gcreate2(file.get(), kind.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                           "create group " + kind);
    opened.columns.emplace(kStepName, create_column(opened.group.get(), kStepName, {}));
    return kinds.emplace(kind, std::move(opened)).first->second;
  }

  // Handles for the groups and datasets `expected` describes (the file now holds exactly that).
  void open_existing(const std::map<std::string, KindColumns>& expected) {
    for (const auto& [kind, columns] : expected) {
      OpenKind opened;
      opened.group = checked(H5Gopen2(file.get(), kind.c_str(), H5P_DEFAULT), H5Gclose, "open " + kind);
      auto open_column = [&](const std::string& name) {
        opened.columns.emplace(name, checked(H5Dopen2(opened.group.get(), name.c_str(), H5P_DEFAULT), H5Dclose,
                                             "open " + kind + "/" + name));
      };
      open_column(kStepName);
      for (const auto& column : columns.values) open_column(column.first);
      opened.rows = columns.steps.size();
      kinds.emplace(kind, std::move(opened));
    }
  }
};

TrainLog::TrainLog(const std::string& dir, const nlohmann::json& run_config, int64_t resume_step)
    : impl_(std::make_unique<Impl>()) {
  QuietHdf5Errors quiet;
  Impl& log = *impl_;
  make_directories(dir);
  log.jsonl_path = train_log_path(dir);
  log.h5_path = dir + "/train_log.h5";

  std::vector<Record> kept;
  if (resume_step >= 0) {
    JsonlContents jsonl = read_jsonl(log.jsonl_path);
    bool changed = jsonl.needs_rewrite;
    std::string text;
    for (Record& record : jsonl.records) {
      if (record.step > resume_step) {
        changed = true;
        continue;
      }
      text += record.line + "\n";
      kept.push_back(std::move(record));
    }
    if (changed) write_file_atomically(log.jsonl_path, text);
  }
  const int truncate = resume_step < 0 ? O_TRUNC : 0;
  log.jsonl_fd = ::open(log.jsonl_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | truncate, 0644);
  if (log.jsonl_fd < 0) throw InputError(log.jsonl_path, "", "cannot open for writing: " + system_reason());

  const std::map<std::string, KindColumns> expected = columns_of(kept);
  if (resume_step < 0 || !truncate_to(log.h5_path, expected)) rebuild(log.h5_path, dir, expected);
  try {
    log.file = open_file_for_writing(log.h5_path);
    write_run_config(log.file.get(), run_config);
    log.open_existing(expected);
  } catch (const Hdf5Failure& failure) {
    throw InputError(log.h5_path, "", failure.what());
  }
  flush();  // the truncated or fresh state is the one a kill before the next checkpoint returns to
}

TrainLog::~TrainLog() {
  try {
    flush();
  } catch (const std::exception&) {
    // Nothing sensible to do while unwinding; the JSONL lines are already written.
  }
  QuietHdf5Errors quiet;
  impl_.reset();
}

void TrainLog::record(const std::string& kind, int64_t step, const std::map<std::string, double>& scalars) {
  check_name(kind, "kind");
  for (const auto& scalar : scalars) check_name(scalar.first, "scalar");
  Impl& log = *impl_;

  nlohmann::ordered_json json;  // keeps "kind" and "step" first
  json["kind"] = kind;
  json[kStepName] = step;
  for (const auto& [name, value] : scalars) json[name] = value;  // NaN and inf dump as null
  if (!write_all(log.jsonl_fd, json.dump() + "\n"))
    throw InputError(log.jsonl_path, "", "cannot write: " + system_reason());

  QuietHdf5Errors quiet;
  try {
    OpenKind& open = log.open_kind(kind);
    const hsize_t row = open.rows;
    for (const auto& scalar : scalars)
      if (!open.columns.count(scalar.first))
        open.columns.emplace(scalar.first,
                             create_column(open.group.get(), scalar.first, std::vector<double>(row, kNaN)));
    for (const auto& column : open.columns) set_rows(column.second.get(), row + 1);
    write_row(open.columns.at(kStepName).get(), row, double(step));
    for (const auto& [name, value] : scalars) write_row(open.columns.at(name).get(), row, value);
    open.rows = row + 1;
  } catch (const Hdf5Failure& failure) {
    throw InputError(log.h5_path, kind, failure.what());
  }
}

void TrainLog::flush() {
  Impl& log = *impl_;
  if (::fsync(log.jsonl_fd) != 0) throw InputError(log.jsonl_path, "", "cannot sync to disk: " + system_reason());
  QuietHdf5Errors quiet;
  if (H5Fflush(log.file.get(), H5F_SCOPE_GLOBAL) < 0) throw InputError(log.h5_path, "", "cannot flush");
  sync_path(log.h5_path);  // H5Fflush only hands the data to the OS
}

// ---------------------------------------------------------------------------------------------
// ProgressBar

namespace {

constexpr size_t kMaxColumns = 79;  // one short of 80: no wrap on terminals that wrap at the edge
constexpr double kRedrawInterval = 0.1;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Tokens per second as the bar shows them; "-" before a rate is known.
std::string format_rate(double per_second) {
  return per_second >= 0 && std::isfinite(per_second) ? format_count(per_second) : "-";
}

}  // namespace

ProgressBar::ProgressBar(int64_t total_steps, std::ostream& out, bool tty)
    : total_(std::max<int64_t>(total_steps, 1)), out_(out), tty_(tty) {}

bool ProgressBar::stderr_is_tty() { return files::stderr_is_terminal(); }

std::string ProgressBar::format_line(int64_t step, int64_t total, double tokens_per_second, double loss, double lr,
                                     double eta_seconds) {
  total = std::max<int64_t>(total, 1);
  const double fraction = std::clamp(double(step) / double(total), 0.0, 1.0);
  const std::string percent = string_printf("%4d%%", int(fraction * 100));
  // Fields have fixed widths (wider only for unusual values), so the bar keeps its length and
  // the numbers do not jump around between redraws.
  const int total_digits = int(std::to_string(total).size());
  const std::string counts =
      string_printf("%*lld/%lld", total_digits, static_cast<long long>(step), static_cast<long long>(total));
  const std::string figures =
      string_printf("  %5s tok/s  loss %5s  lr %.1e  ETA %-8s", format_rate(tokens_per_second).c_str(),
                    string_printf("%.4g", loss).c_str(), lr, format_clock(eta_seconds).c_str());
  // The bar takes what the figures leave, up to 30 columns; it goes when fewer than 5 are left.
  const size_t fixed = percent.size() + 4 + counts.size() + figures.size();  // " |" and "| "
  const size_t width = fixed + 5 <= kMaxColumns ? std::min<size_t>(kMaxColumns - fixed, 30) : 0;
  std::string line = percent;
  if (width > 0) {
    const auto filled = size_t(fraction * double(width));
    line += " |" + std::string(filled, '#') + std::string(width - filled, ' ') + "| ";
  } else {
    line += " ";
  }
  line += counts + figures;
  if (line.size() > kMaxColumns) line.resize(kMaxColumns);
  return line.substr(0, line.find_last_not_of(' ') + 1);
}

void ProgressBar::draw(const std::string& line) {
  out_ << '\r' << line;
  if (line.size() < drawn_width_) out_ << std::string(drawn_width_ - line.size(), ' ');
  out_.flush();
  drawn_width_ = line.size();
  drawn_ = true;
}

void ProgressBar::erase() {
  if (!drawn_) return;
  out_ << '\r' << std::string(drawn_width_, ' ') << '\r';
  drawn_ = false;
  drawn_width_ = 0;
}

void ProgressBar::update(int64_t step, double tokens_per_second, double loss, double lr) {
  if (!tty_) return;
  const double now = now_seconds();
  if (first_step_ < 0) {
    first_step_ = step;
    start_ = now;
  }
  const int64_t steps_done = step - first_step_;
  const double eta =
      steps_done > 0 ? (now - start_) / double(steps_done) * double(std::max<int64_t>(total_ - step, 0)) : -1.0;
  latest_ = format_line(step, total_, tokens_per_second, loss, lr, eta);
  latest_drawn_ = false;
  const bool final_step = step >= total_;
  if (!final_step && last_draw_ >= 0 && now - last_draw_ < kRedrawInterval) return;
  draw(latest_);
  latest_drawn_ = true;
  last_draw_ = now;
}

void ProgressBar::message(const std::string& line) {
  const bool bar_shown = drawn_;
  erase();
  out_ << line << '\n';
  if (bar_shown) {
    draw(latest_);
    latest_drawn_ = true;
  }
  out_.flush();
}

void ProgressBar::finish() {
  if (!tty_ || latest_.empty()) return;
  if (!latest_drawn_) draw(latest_);
  if (drawn_) out_ << '\n';
  out_.flush();
  drawn_ = false;
  drawn_width_ = 0;
  latest_.clear();
  latest_drawn_ = true;
}

ProgressBar::~ProgressBar() {
  if (drawn_) out_ << '\n' << std::flush;
}

}  // namespace gqa
