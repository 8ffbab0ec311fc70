// Checkpoint folders: CheckpointWriter (single file, sharded, passthrough files, atomic publish,
// overwrite) checked by our reader and by Python safetensors/transformers; reader errors for bad
// folders and indexes; load_role cuts and shape checks.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/arch.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using gqa::Checkpoint;
using gqa::CheckpointWriter;
using gqa::DType;
using gqa::InputError;
using gqa::Role;
using gqa::Stack;
using gqa::TensorToWrite;
using json = nlohmann::json;
using gqa::test::read_text;
using gqa::test::write_text;

struct TempDir : gqa::test::TempDirWithPath<fs::path> {
  TempDir() : TempDirWithPath("gqa-io-ckpt") {}
};

// Entries of `dir` whose names start with `prefix` (leftover temporary folders).
std::vector<std::string> entries_with_prefix(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
  return out;
}

using Values = std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>;

TensorToWrite float_tensor(const std::string& name, std::vector<int64_t> shape, std::vector<float> v,
                           DType dt = DType::F32) {
  TensorToWrite t;
  t.name = name;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.nbytes = v.size() * gqa::dtype_size(dt);
  t.fill = [v = std::move(v), dt](uint8_t* dst) { gqa::from_float32(dt, v.data(), int64_t(v.size()), dst); };
  return t;
}

// A tiny Llama (vocab 32, hidden 16, 4 query heads of 4, 2 KV heads, ffn 24, 2 layers).
json tiny_llama_config() {
  return {{"model_type", "llama"},
          {"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 32},
          {"hidden_size", 16},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"intermediate_size", 24},
          {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", false},
          {"dtype", "float32"}};
}

Values tiny_llama_values(const std::string& prefix = "model.") {
  std::map<std::string, std::vector<int64_t>> shapes = {
      {prefix + "embed_tokens.weight", {32, 16}}, {prefix + "norm.weight", {16}}, {"lm_head.weight", {32, 16}}};
  for (int l = 0; l < 2; ++l) {
    const std::string b = prefix + "layers." + std::to_string(l) + ".";
    shapes[b + "input_layernorm.weight"] = {16};
    shapes[b + "post_attention_layernorm.weight"] = {16};
    shapes[b + "self_attn.q_proj.weight"] = {16, 16};
    shapes[b + "self_attn.k_proj.weight"] = {8, 16};
    shapes[b + "self_attn.v_proj.weight"] = {8, 16};
    shapes[b + "self_attn.o_proj.weight"] = {16, 16};
    shapes[b + "mlp.gate_proj.weight"] = {24, 16};
    shapes[b + "mlp.up_proj.weight"] = {24, 16};
    shapes[b + "mlp.down_proj.weight"] = {16, 24};
  }
  Values out;
  int seed = 1;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float((i * 37 + seed * 11) % 101 - 50) / 64.0f;  // exact in bf16 too
    out[name] = {shape, v};
    ++seed;
  }
  return out;
}

void add_all(CheckpointWriter& w, const Values& values, DType dt = DType::F32) {
  for (const auto& [name, sv] : values) w.add(float_tensor(name, sv.first, sv.second, dt));
}

std::vector<float> floats_of(const gqa::TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  gqa::to_float32(t.dtype, t.data, t.numel(), v.data());
  return v;
}

// Writes a tiny Llama folder; returns its path.
std::string write_tiny(const TempDir& d, const std::string& name, uint64_t max_shard = 5ull << 30,
                       const json& cfg = tiny_llama_config(), const Values& values = tiny_llama_values()) {
  const std::string out = d.file(name);
  CheckpointWriter w(out, false, max_shard);
  w.set_config(cfg);
  add_all(w, values);
  w.commit();
  return out;
}

// Constructing a Checkpoint of `dir` must throw InputError naming `file` (and `field` when given).
::testing::AssertionResult OpenFails(const std::string& dir, const std::string& file, const std::string& field,
                                     const std::string& words = "") {
  try {
    Checkpoint c(dir);
    return ::testing::AssertionFailure() << "opened " << dir;
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (e.file() != file)
      return ::testing::AssertionFailure() << "names file '" << e.file() << "', expected '" << file << "': " << what;
    if (e.field() != field)
      return ::testing::AssertionFailure() << "names field '" << e.field() << "', expected '" << field << "': " << what;
    if (!words.empty() && what.find(words) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << words << "': " << what;
    if (what.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "multi-line: " << what;
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "non-InputError: " << e.what();
  }
}

bool have_python() {
  const std::string py = GQA_PYTHON;
  return !py.empty() && fs::exists(py);
}

// Runs the venv Python on `script` with `args`; returns the exit status and stdout.
int run_python(const TempDir& d, const std::string& script, const std::string& args, std::string* out) {
  const std::string sp = d.file("check.py"), op = d.file("check.out");
  write_text(sp, script);
  const std::string cmd = "'" + std::string(GQA_PYTHON) + "' '" + sp + "' " + args + " > '" + op + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  *out = read_text(op);
  return rc;
}

// Checks a folder with Python: safe_open every shard, the index against the shards, and
// transformers.from_pretrained; prints {name: [shape, sum]} on its last line.
const char* kPythonCheck = R"PY(
import json, os, sys
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
import torch
from safetensors import safe_open
d = sys.argv[1]
tensors = {}
idx = os.path.join(d, "model.safetensors.index.json")
if os.path.exists(idx):
    index = json.load(open(idx))
    files = sorted(set(index["weight_map"].values()))
    listed = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    assert files == listed, (files, listed)
    total = 0
    for f in files:
        with safe_open(os.path.join(d, f), framework="pt") as s:
            assert s.metadata() == {"format": "pt"}, s.metadata()
            for k in s.keys():
                assert index["weight_map"][k] == f, (k, f)
                t = s.get_tensor(k)
                total += t.numel() * t.element_size()
                tensors[k] = t
    assert set(tensors) == set(index["weight_map"]), "weight_map and shard contents differ"
    assert index["metadata"]["total_size"] == total, (index["metadata"]["total_size"], total)
else:
    with safe_open(os.path.join(d, "model.safetensors"), framework="pt") as s:
        assert s.metadata() == {"format": "pt"}, s.metadata()
        for k in s.keys():
            tensors[k] = s.get_tensor(k)
import transformers
model, info = transformers.AutoModelForCausalLM.from_pretrained(d, output_loading_info=True, dtype=torch.float32)
assert not info["missing_keys"] and not info["unexpected_keys"], info
assert model.config.num_key_value_heads == 2, model.config
sd = model.state_dict()
for k, t in tensors.items():
    assert torch.equal(sd[k], t.float()), k
print(json.dumps({k: [list(t.shape), float(t.double().sum())] for k, t in tensors.items()}))
)PY";

void expect_python_reads(const std::string& dir, const Values& values) {
  if (!have_python()) GTEST_SKIP() << "no Python at '" << GQA_PYTHON << "'";
  TempDir scratch;
  std::string out;
  const int rc = run_python(scratch, kPythonCheck, "'" + dir + "'", &out);
  ASSERT_EQ(rc, 0) << out;
  const std::string last = out.substr(out.find_last_of('\n', out.size() - 2) + 1);
  json j = json::parse(last);
  ASSERT_EQ(j.size(), values.size());
  for (const auto& [name, sv] : values) {
    ASSERT_TRUE(j.contains(name)) << name;
    EXPECT_EQ(j[name][0].get<std::vector<int64_t>>(), sv.first) << name;
    double sum = 0;
    for (float f : sv.second) sum += f;
    EXPECT_NEAR(j[name][1].get<double>(), sum, 1e-9) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Writer + reader

TEST(CheckpointWriter, SingleFileRoundTrip) {
  TempDir d;
  const Values values = tiny_llama_values();
  const std::string out = write_tiny(d, "single");
  EXPECT_TRUE(fs::is_regular_file(out + "/config.json"));
  EXPECT_TRUE(fs::is_regular_file(out + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  EXPECT_TRUE(entries_with_prefix(d.path, "single.tmp-").empty());
  EXPECT_EQ(json::parse(read_text(out + "/config.json")), tiny_llama_config());

  Checkpoint c(out);
  EXPECT_EQ(c.dir(), out);
  EXPECT_EQ(c.config().n_layers, 2);
  EXPECT_EQ(c.shard_files(), std::vector<std::string>{out + "/model.safetensors"});
  EXPECT_EQ(c.metadata().at("format"), "pt");
  EXPECT_EQ(c.names().size(), values.size());
  EXPECT_EQ(c.weight_dtype(), DType::F32);
  int64_t params = 0;
  for (const auto& [name, sv] : values) {
    ASSERT_TRUE(c.has(name)) << name;
    EXPECT_EQ(c.tensor(name).shape, sv.first);
    EXPECT_EQ(floats_of(c.tensor(name)), sv.second) << name;
    EXPECT_EQ(c.file_of(name), out + "/model.safetensors");
    params += int64_t(sv.second.size());
  }
  EXPECT_EQ(c.parameter_count(), params);
  EXPECT_FALSE(c.has("nope"));
  EXPECT_THROW(c.tensor("nope"), InputError);
}

// Published folders get the modes mkdir/open would give (0777/0666 less the umask), not mkdtemp's
// private 0700, so other users of a shared machine can read a converted model.
TEST(CheckpointWriter, OutputFolderModesFollowTheUmask) {
  for (const mode_t mask : {mode_t(022), mode_t(077), mode_t(002)}) {
    const mode_t before = ::umask(mask);
    TempDir d;
    const std::string out = write_tiny(d, "perm");
    ::umask(before);
    struct stat st {};
    ASSERT_EQ(::stat(out.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0777 & ~mask) << "umask " << std::oct << mask;
    for (const char* f : {"/config.json", "/model.safetensors"}) {
      ASSERT_EQ(::stat((out + f).c_str(), &st), 0) << f;
      EXPECT_EQ(st.st_mode & 07777, 0666 & ~mask) << f << " umask " << std::oct << mask;
    }
  }
}

TEST(CheckpointWriter, SingleFileReadableByPython) {
  TempDir d;
  expect_python_reads(write_tiny(d, "py_single"), tiny_llama_values());
}

TEST(CheckpointWriter, ShardedRoundTrip) {
  TempDir d;
  const Values values = tiny_llama_values();
  const uint64_t max_shard = 1500;  // q_proj/o_proj (1024 B) fit; embed/lm_head (2048 B) get shards of their own
  const std::string out = write_tiny(d, "sharded", max_shard);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  ASSERT_TRUE(fs::is_regular_file(out + "/model.safetensors.index.json"));
  json index = json::parse(read_text(out + "/model.safetensors.index.json"));
  uint64_t total = 0;
  for (const auto& [name, sv] : values) total += sv.second.size() * 4;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  ASSERT_EQ(index["weight_map"].size(), values.size());

  std::set<std::string> files;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
    files.insert(it->get<std::string>());
  ASSERT_GT(files.size(), 2u);
  const std::regex pattern("model-(\\d{5})-of-(\\d{5})\\.safetensors");
  int k = 1;
  for (const auto& f : files) {  // sorted: model-00001-of-0000n, model-00002-of-0000n, ...
    std::smatch m;
    ASSERT_TRUE(std::regex_match(f, m, pattern)) << f;
    EXPECT_EQ(std::stoi(m[1]), k++);
    EXPECT_EQ(std::stoul(m[2]), files.size());
    EXPECT_TRUE(fs::is_regular_file(out + "/" + f));
  }
  size_t listed = 0;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().extension() == ".safetensors") ++listed;
  EXPECT_EQ(listed, files.size());

  // Every shard is within the limit unless it holds one oversized tensor; names ascend across shards.
  std::string last_name;
  for (const auto& f : files) {
    gqa::SafetensorsFile s(out + "/" + f);
    uint64_t bytes = 0;
    for (const auto& n : s.names()) {
      bytes += s.tensor(n).nbytes;
      EXPECT_EQ(index["weight_map"][n], f) << n;
      EXPECT_GT(n, last_name);
    }
    last_name = s.names().back();
    EXPECT_TRUE(bytes <= max_shard || s.names().size() == 1) << f << " holds " << bytes << " bytes";
    EXPECT_EQ(s.metadata().at("format"), "pt");
  }

  Checkpoint c(out);
  EXPECT_EQ(c.shard_files().size(), files.size());
  EXPECT_EQ(c.names().size(), values.size());
  for (const auto& [name, sv] : values) {
    EXPECT_EQ(floats_of(c.tensor(name)), sv.second) << name;
    EXPECT_EQ(c.file_of(name), out + "/" + index["weight_map"][name].get<std::string>());
  }
}

TEST(CheckpointWriter, ShardedReadableByPython) {
  TempDir d;
  expect_python_reads(write_tiny(d, "py_sharded", 1500), tiny_llama_values());
}

TEST(CheckpointWriter, Bf16WeightsAndDtype) {
  TempDir d;
  const Values values = tiny_llama_values();
  const std::string out = d.file("bf16");
  {
    CheckpointWriter w(out, false);
    w.set_config(tiny_llama_config());
    add_all(w, values, DType::BF16);
    w.commit();
  }
  Checkpoint c(out);
  EXPECT_EQ(c.weight_dtype(), DType::BF16);
  for (const auto& [name, sv] : values) EXPECT_EQ(floats_of(c.tensor(name)), sv.second) << name;  // exact in bf16
}

TEST(CheckpointWriter, PassthroughFilesAndTrailingSlash) {
  TempDir d;
  const std::string src = d.file("src");
  fs::create_directory(src);
  write_text(src + "/tokenizer.json", "{\"model\": {}}");
  write_text(src + "/generation_config.json", "{\"max_new_tokens\": 5}\n");
  const std::string out = d.file("with_files");
  {
    CheckpointWriter w(out + "/", false);
    w.set_config(tiny_llama_config());
    add_all(w, tiny_llama_values());
    for (const auto& f : gqa::passthrough_files()) w.copy_from(src, f);
    w.copy_from(src, "not_there.txt");  // absent: no-op
    w.commit();
  }
  EXPECT_EQ(read_text(out + "/tokenizer.json"), "{\"model\": {}}");
  EXPECT_EQ(read_text(out + "/generation_config.json"), "{\"max_new_tokens\": 5}\n");
  EXPECT_FALSE(fs::exists(out + "/not_there.txt"));
  EXPECT_FALSE(fs::exists(out + "/vocab.json"));
  EXPECT_TRUE(entries_with_prefix(d.path, "with_files.tmp-").empty());
  const auto& pass = gqa::passthrough_files();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                        "vocab.json", "merges.txt", "tokenizer.model", "spiece.model"})
    EXPECT_NE(std::find(pass.begin(), pass.end(), f), pass.end()) << f;
}

// ---------------------------------------------------------------------------------------------
// Atomic publish

TEST(CheckpointWriter, FailedFillLeavesNothing) {
  TempDir d;
  for (uint64_t max_shard : {uint64_t(5) << 30, uint64_t(1500)}) {
    const std::string out = d.file("failed");
    std::string tmp;
    {
      CheckpointWriter w(out, false, max_shard);
      tmp = w.temp_dir();
      EXPECT_EQ(tmp.rfind(out + ".tmp-", 0), 0u) << tmp;
      EXPECT_TRUE(fs::is_directory(tmp));
      EXPECT_FALSE(fs::exists(out));
      w.set_config(tiny_llama_config());
      add_all(w, tiny_llama_values());
      // Sorts last, so with sharding several shards are already on disk when it throws.
      TensorToWrite bad = float_tensor("zzz.bad", {4}, {1, 2, 3, 4});
      bad.fill = [](uint8_t*) { throw std::runtime_error("disk exploded"); };
      w.add(bad);
      try {
        w.commit();
        FAIL() << "commit succeeded";
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "disk exploded");
      }
      EXPECT_FALSE(fs::exists(out));
    }
    EXPECT_FALSE(fs::exists(tmp));
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(entries_with_prefix(d.path, "failed").empty())
        << "leftover: " << entries_with_prefix(d.path, "failed")[0];
  }
}

TEST(CheckpointWriter, FailedOverwriteKeepsTheOldFolder) {
  TempDir d;
  const std::string out = write_tiny(d, "keep");
  write_text(out + "/marker.txt", "old");
  {
    CheckpointWriter w(out, true);
    w.set_config(tiny_llama_config());
    TensorToWrite bad = float_tensor("a", {1}, {1});
    bad.fill = [](uint8_t*) { throw std::runtime_error("boom"); };
    w.add(bad);
    EXPECT_THROW(w.commit(), std::runtime_error);
  }
  EXPECT_EQ(read_text(out + "/marker.txt"), "old");
  EXPECT_NO_THROW(Checkpoint c(out));
  EXPECT_TRUE(entries_with_prefix(d.path, "keep.").empty());
}

// A tiny Llama whose config.json says which writer wrote it.
void fill_tagged(CheckpointWriter& w, const std::string& writer) {
  json cfg = tiny_llama_config();
  cfg["writer"] = writer;
  w.set_config(cfg);
  add_all(w, tiny_llama_values());
}

// Two writers started into the same new folder, without overwrite: the one that finishes first
// publishes, the later one stops with an InputError naming the folder and replaces nothing.
TEST(CheckpointWriter, ASecondWriterDoesNotReplaceAFolderThatAppeared) {
  TempDir d;
  const std::string out = d.file("shared");
  {
    CheckpointWriter a(out, false), b(out, false);  // both started while the folder was absent
    fill_tagged(a, "first");
    fill_tagged(b, "second");
    EXPECT_FALSE(a.commit());
    try {
      b.commit();
      ADD_FAILURE() << "the second writer replaced the first one's folder";
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), out);
      EXPECT_NE(std::string(e.what()).find("appeared while"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(gqa::read_json_file(out + "/config.json")["writer"], "first");
  EXPECT_TRUE(entries_with_prefix(d.path, "shared.").empty());  // the loser's temp folder is gone
}

// With overwrite the last writer wins, and commit() says it replaced a folder.
TEST(CheckpointWriter, WithOverwriteTheLastWriterWinsAndSaysSo) {
  TempDir d;
  const std::string out = d.file("shared");
  CheckpointWriter a(out, true), b(out, true);
  fill_tagged(a, "first");
  fill_tagged(b, "second");
  EXPECT_FALSE(a.commit());
  EXPECT_TRUE(b.commit());
  EXPECT_EQ(gqa::read_json_file(out + "/config.json")["writer"], "second");
  EXPECT_TRUE(entries_with_prefix(d.path, "shared.").empty());
}

TEST(CheckpointWriter, AbandonedWriterCleansUp) {
  TempDir d;
  const std::string out = d.file("abandoned");
  {
    CheckpointWriter w(out, false);
    w.set_config(tiny_llama_config());
    add_all(w, tiny_llama_values());
    write_text(w.temp_dir() + "/partial", "x");
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(entries_with_prefix(d.path, "abandoned").empty());
}

TEST(CheckpointWriter, PassthroughVanishingBeforeCommit) {
  TempDir d;
  const std::string src = d.file("src");
  fs::create_directory(src);
  write_text(src + "/tokenizer.json", "{}");
  const std::string out = d.file("vanish");
  {
    CheckpointWriter w(out, false);
    w.set_config(tiny_llama_config());
    add_all(w, tiny_llama_values());
    w.copy_from(src, "tokenizer.json");
    fs::remove(src + "/tokenizer.json");
    try {
      w.commit();
      FAIL();
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), src + "/tokenizer.json");
    }
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(entries_with_prefix(d.path, "vanish").empty());
}

TEST(CheckpointWriter, ExistingOutput) {
  TempDir d;
  const std::string out = write_tiny(d, "exists");
  write_text(out + "/marker.txt", "old");
  try {
    CheckpointWriter w(out, false);
    FAIL() << "accepted an existing output folder";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), out);
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(entries_with_prefix(d.path, "exists.").empty());
  write_text(d.file("plainfile"), "x");
  EXPECT_THROW(CheckpointWriter(d.file("plainfile"), false), InputError);

  // With overwrite: replaced as a whole, nothing left beside it.
  json cfg = tiny_llama_config();
  cfg["num_key_value_heads"] = 4;
  Values values = tiny_llama_values();
  for (int l = 0; l < 2; ++l)
    for (const char* p : {"k_proj", "v_proj"}) {
      auto& sv = values["model.layers." + std::to_string(l) + ".self_attn." + p + ".weight"];
      sv.first = {16, 16};
      sv.second.resize(256, 0.5f);
    }
  {
    CheckpointWriter w(out, true);
    w.set_config(cfg);
    add_all(w, values);
    w.commit();
  }
  EXPECT_FALSE(fs::exists(out + "/marker.txt"));
  Checkpoint c(out);
  EXPECT_EQ(c.config().layout(gqa::AttentionModule::DecoderSelf, 0).n_kv, 4);
  EXPECT_EQ(c.tensor("model.layers.1.self_attn.k_proj.weight").shape, (std::vector<int64_t>{16, 16}));
  EXPECT_TRUE(entries_with_prefix(d.path, "exists.").empty());
  // Overwriting a sharded folder with a single-file one leaves no stale shards or index.
  const std::string sh = write_tiny(d, "resharded", 1500);
  {
    CheckpointWriter w(sh, true);
    w.set_config(tiny_llama_config());
    add_all(w, tiny_llama_values());
    w.commit();
  }
  EXPECT_FALSE(fs::exists(sh + "/model.safetensors.index.json"));
  EXPECT_EQ(Checkpoint(sh).shard_files().size(), 1u);
}

TEST(CheckpointWriter, MissingParentFolder) {
  TempDir d;
  try {
    CheckpointWriter w(d.file("no/such/out"), false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), d.file("no/such/out"));
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader errors

TEST(CheckpointBad, FolderAndConfig) {
  TempDir d;
  EXPECT_TRUE(OpenFails(d.file("missing"), d.file("missing"), "", "does not exist"));
  write_text(d.file("afile"), "x");
  EXPECT_TRUE(OpenFails(d.file("afile"), d.file("afile"), "", "not a folder"));
  fs::create_directory(d.file("noconfig"));
  EXPECT_TRUE(OpenFails(d.file("noconfig"), d.file("noconfig") + "/config.json", "", "cannot open"));
  const std::string out = write_tiny(d, "badconfig");
  write_text(out + "/config.json", "{\"model_type\": \"llama\",");
  EXPECT_TRUE(OpenFails(out, out + "/config.json", "", "invalid JSON"));
  write_text(out + "/config.json", "{\"model_type\": \"bert\"}");
  EXPECT_TRUE(OpenFails(out, out + "/config.json", "model_type", "bert"));
  json cfg = tiny_llama_config();
  cfg["num_key_value_heads"] = 3;
  write_text(out + "/config.json", cfg.dump());
  EXPECT_TRUE(OpenFails(out, out + "/config.json", "num_key_value_heads"));
}

TEST(CheckpointBad, NoWeightsOrPickleOnly) {
  TempDir d;
  const std::string out = write_tiny(d, "noweights");
  fs::remove(out + "/model.safetensors");
  EXPECT_TRUE(OpenFails(out, out, "model.safetensors", "no weights"));
  write_text(out + "/pytorch_model.bin", "PK\x03\x04 not really");
  try {
    Checkpoint c(out);
    FAIL();
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), out);
    EXPECT_EQ(e.field(), "pytorch_model.bin");
    EXPECT_NE(what.find("save_pretrained"), std::string::npos) << what;  // says how to convert
    EXPECT_NE(what.find("model.safetensors"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  fs::remove(out + "/pytorch_model.bin");
  write_text(out + "/pytorch_model.bin.index.json", "{}");
  EXPECT_TRUE(OpenFails(out, out, "pytorch_model.bin", "save_pretrained"));
}

TEST(CheckpointBad, CorruptShardNamesTheFile) {
  TempDir d;
  const std::string out = write_tiny(d, "corrupt");
  const std::string st = out + "/model.safetensors";
  fs::resize_file(st, fs::file_size(st) - 4);
  EXPECT_TRUE(OpenFails(out, st, "model.norm.weight.data_offsets", "truncated"));  // the last tensor in name order
  write_text(st, "");
  EXPECT_TRUE(OpenFails(out, st, "header"));
}

TEST(CheckpointBad, ShardedIndex) {
  TempDir d;
  const std::string out = write_tiny(d, "idx", 1500);
  const std::string index_path = out + "/model.safetensors.index.json";
  const json index = json::parse(read_text(index_path));
  const std::string first_shard = index["weight_map"]["lm_head.weight"];

  // Points to a missing shard.
  json j = index;
  j["weight_map"]["lm_head.weight"] = "model-00099-of-00099.safetensors";
  write_text(index_path, j.dump());
  EXPECT_TRUE(OpenFails(out, out + "/model-00099-of-00099.safetensors", "", "cannot open"));
  // Points to a shard that lacks the tensor.
  j = index;
  std::string other;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
    if (it->get<std::string>() != first_shard) other = it->get<std::string>();
  j["weight_map"]["lm_head.weight"] = other;
  write_text(index_path, j.dump());
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map.lm_head.weight", other));
  // Lists a tensor no shard has.
  j = index;
  j["weight_map"]["model.extra.weight"] = first_shard;
  write_text(index_path, j.dump());
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map.model.extra.weight", "no such tensor"));
  // File names with a path.
  for (const std::string& bad :
       std::vector<std::string>{"../" + first_shard, "sub/" + first_shard, "/etc/passwd", ".."}) {
    j = index;
    j["weight_map"]["lm_head.weight"] = bad;
    write_text(index_path, j.dump());
    EXPECT_TRUE(OpenFails(out, index_path, "weight_map.lm_head.weight", "path")) << bad;
  }
  // A shard name that is the folder itself.
  for (const std::string bad : {".", ""}) {
    j = index;
    j["weight_map"]["lm_head.weight"] = bad;
    write_text(index_path, j.dump());
    try {
      Checkpoint c(out);
      ADD_FAILURE() << "accepted shard name '" << bad << "'";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(out), std::string::npos) << e.what();
    }
  }
  // Not a string, no weight_map, empty weight_map, not JSON.
  j = index;
  j["weight_map"]["lm_head.weight"] = 3;
  write_text(index_path, j.dump());
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map.lm_head.weight"));
  write_text(index_path, R"({"metadata": {"total_size": 0}})");
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map"));
  write_text(index_path, R"({"weight_map": []})");
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map"));
  write_text(index_path, R"({"weight_map": {}})");
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map", "no tensors"));
  write_text(index_path, "[]");
  EXPECT_TRUE(OpenFails(out, index_path, "weight_map"));
  write_text(index_path, "{");
  EXPECT_TRUE(OpenFails(out, index_path, "", "invalid JSON"));
  // Restored, it opens again.
  write_text(index_path, index.dump());
  EXPECT_NO_THROW(Checkpoint c(out));
}

// ---------------------------------------------------------------------------------------------
// load_role

TEST(LoadRole, LlamaRolesAndShapeMismatch) {
  TempDir d;
  const Values values = tiny_llama_values();
  const std::string out = write_tiny(d, "roles");
  Checkpoint c(out);
  auto q = gqa::load_role(c, Stack::Decoder, Role::AttnQ, 1, {16, 16});
  EXPECT_EQ(q.shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(q.numel(), 256);
  EXPECT_EQ(q.data, values.at("model.layers.1.self_attn.q_proj.weight").second);
  auto k = gqa::load_role(c, Stack::Decoder, Role::AttnK, 0, {8, 16});
  EXPECT_EQ(k.data, values.at("model.layers.0.self_attn.k_proj.weight").second);
  auto n = gqa::load_role(c, Stack::Decoder, Role::FinalNorm, 0, {16});
  EXPECT_EQ(n.data, values.at("model.norm.weight").second);
  EXPECT_TRUE(gqa::has_role(c, Stack::Decoder, Role::AttnV, 1));
  EXPECT_FALSE(gqa::has_role(c, Stack::Decoder, Role::AttnQBias, 0));          // bias-free
  EXPECT_FALSE(gqa::has_role(c, Stack::Decoder, Role::PositionEmbedding, 0));  // no such role in Llama
  try {
    gqa::load_role(c, Stack::Decoder, Role::PositionEmbedding, 0, {64, 16});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), out);
    EXPECT_NE(std::string(e.what()).find("llama"), std::string::npos);
  }
  try {
    gqa::load_role(c, Stack::Decoder, Role::AttnQBias, 0, {16});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj.bias");
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  // The expected shape disagrees (as when config.json says 4 KV heads but k_proj holds 2).
  try {
    gqa::load_role(c, Stack::Decoder, Role::AttnK, 0, {16, 16});
    FAIL();
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), out + "/model.safetensors");
    EXPECT_EQ(e.field(), "model.layers.0.self_attn.k_proj.weight");
    EXPECT_NE(what.find("[8, 16]"), std::string::npos) << what;
    EXPECT_NE(what.find("[16, 16]"), std::string::npos) << what;
    EXPECT_NE(what.find("disagrees with config.json"), std::string::npos) << what;
  }
}

// A NaN or Inf weight is refused at load, naming the tensor and the element (issue #8).
TEST(LoadRole, NonFiniteWeightNamesTensorAndElement) {
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    for (const DType dt : {DType::F32, DType::BF16, DType::F16}) {
      TempDir d;
      Values values = tiny_llama_values();
      values["model.layers.1.mlp.down_proj.weight"].second[size_t(3 * 24 + 5)] = bad;
      CheckpointWriter w(d.file("m"), false);
      w.set_config(tiny_llama_config());
      add_all(w, values, dt);
      w.commit();
      Checkpoint c(d.file("m"));
      EXPECT_NO_THROW(gqa::load_role(c, Stack::Decoder, Role::FfnDown, 0, {16, 24}));
      try {
        gqa::load_role(c, Stack::Decoder, Role::FfnDown, 1, {16, 24});
        FAIL() << "non-finite weight accepted";
      } catch (const InputError& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.field(), "model.layers.1.mlp.down_proj.weight");
        EXPECT_NE(what.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << what;
        EXPECT_NE(what.find("row 3, column 5"), std::string::npos) << what;
      }
    }
  }
}

TEST(LoadRole, WrongQProjShapeInCheckpoint) {
  TempDir d;
  Values values = tiny_llama_values();
  auto& q = values["model.layers.1.self_attn.q_proj.weight"];
  q.first = {12, 16};
  q.second.resize(12 * 16);
  const std::string out = write_tiny(d, "wrongq", 1500, tiny_llama_config(), values);
  Checkpoint c(out);  // headers are consistent; only the config disagrees
  const auto& l = c.config().layout(gqa::AttentionModule::DecoderSelf, 1);
  const std::vector<int64_t> expected = {int64_t(l.n_q) * l.head_dim_qk, c.config().d_model};
  try {
    gqa::load_role(c, Stack::Decoder, Role::AttnQ, 1, expected);
    FAIL();
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), c.file_of("model.layers.1.self_attn.q_proj.weight"));
    EXPECT_EQ(e.field(), "model.layers.1.self_attn.q_proj.weight");
    EXPECT_NE(what.find("model.layers.1.self_attn.q_proj.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("disagrees with config.json"), std::string::npos) << what;
  }
}

TEST(LoadRole, BaseModelNamesDtypesAndRanks) {
  TempDir d;
  Values values = tiny_llama_values("");                        // LlamaModel.save_pretrained: no "model." prefix
  values["layers.0.self_attn.q_proj.weight"].second[0] = 0.1f;  // not exact in F16
  const std::string out = d.file("base");
  {
    CheckpointWriter w(out, false);
    w.set_config(tiny_llama_config());
    for (const auto& [name, sv] : values)
      w.add(float_tensor(name, sv.first, sv.second, name.find("layers.0.") == 0 ? DType::F16 : DType::F32));
    w.commit();
  }
  Checkpoint c(out);
  auto q = gqa::load_role(c, Stack::Decoder, Role::AttnQ, 0, {16, 16});
  EXPECT_EQ(q.data[0], 0.0999755859375f);  // F16 nearest to 0.1
  EXPECT_EQ(q.data[1], values["layers.0.self_attn.q_proj.weight"].second[1]);
  auto e = gqa::load_role(c, Stack::Decoder, Role::TokenEmbedding, 0, {32, 16});
  EXPECT_EQ(e.data, values["embed_tokens.weight"].second);
  EXPECT_TRUE(gqa::has_role(c, Stack::Decoder, Role::FfnGate, 1));

  // Integer weights and rank-3 tensors are refused.
  const std::string bad = d.file("badtypes");
  {
    CheckpointWriter w(bad, false);
    w.set_config(tiny_llama_config());
    Values v = tiny_llama_values();
    for (const auto& [name, sv] : v) {
      if (name == "model.norm.weight") {
        TensorToWrite t;
        t.name = name;
        t.dtype = DType::I32;
        t.shape = {16};
        t.nbytes = 64;
        t.fill = [](uint8_t* dst) { std::memset(dst, 0, 64); };
        w.add(t);
      } else if (name == "model.layers.0.self_attn.q_proj.weight") {
        w.add(float_tensor(name, {4, 4, 16}, sv.second));
      } else {
        w.add(float_tensor(name, sv.first, sv.second));
      }
    }
    w.commit();
  }
  Checkpoint cb(bad);
  try {
    gqa::load_role(cb, Stack::Decoder, Role::FinalNorm, 0, {16});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "model.norm.weight");
    EXPECT_NE(std::string(e.what()).find("I32"), std::string::npos);
  }
  try {
    gqa::load_role(cb, Stack::Decoder, Role::AttnQ, 0, {16, 16});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "model.layers.0.self_attn.q_proj.weight");
    EXPECT_NE(std::string(e.what()).find("3 dims"), std::string::npos);
  }
}

json tiny_gpt2_config() {
  return {{"model_type", "gpt2"}, {"vocab_size", 10}, {"n_embd", 8}, {"n_layer", 1}, {"n_head", 2}, {"n_positions", 4}};
}

std::string write_gpt2(const TempDir& d, const std::string& name, const json& cfg, int64_t qkv_out) {
  const std::string out = d.file(name);
  CheckpointWriter w(out, false);
  w.set_config(cfg);
  std::vector<float> W(size_t(8 * qkv_out)), B(static_cast<size_t>(qkv_out)), P(64);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < qkv_out; ++j) W[size_t(i * qkv_out + j)] = float(i * 100 + j);  // Conv1D [in, out]
  for (int64_t j = 0; j < qkv_out; ++j) B[size_t(j)] = float(j);
  for (int64_t i = 0; i < 64; ++i) P[size_t(i)] = float(i);
  w.add(float_tensor("transformer.h.0.attn.c_attn.weight", {8, qkv_out}, W));
  w.add(float_tensor("transformer.h.0.attn.c_attn.bias", {qkv_out}, B));
  w.add(float_tensor("transformer.h.0.attn.c_proj.weight", {8, 8}, P));
  w.commit();
  return out;
}

TEST(LoadRole, Gpt2FusedConv1dCuts) {
  TempDir d;
  const std::string out = write_gpt2(d, "gpt2", tiny_gpt2_config(), 24);
  Checkpoint c(out);
  for (int part = 0; part < 3; ++part) {
    const Role r = part == 0 ? Role::AttnQ : part == 1 ? Role::AttnK : Role::AttnV;
    auto t = gqa::load_role(c, Stack::Decoder, r, 0, {8, 8});
    for (int64_t o = 0; o < 8; ++o)
      for (int64_t i = 0; i < 8; ++i) ASSERT_EQ(t.data[size_t(o * 8 + i)], float(i * 100 + part * 8 + o)) << part;
    const Role rb = part == 0 ? Role::AttnQBias : part == 1 ? Role::AttnKBias : Role::AttnVBias;
    auto b = gqa::load_role(c, Stack::Decoder, rb, 0, {8});
    for (int64_t o = 0; o < 8; ++o) EXPECT_EQ(b.data[size_t(o)], float(part * 8 + o));
  }
  auto o = gqa::load_role(c, Stack::Decoder, Role::AttnO, 0, {8, 8});
  EXPECT_EQ(o.data[1], 8.0f);  // transposed: [out=0, in=1] is stored at [in=1, out=0]
  EXPECT_EQ(o.data[8], 1.0f);

  // Grouped GPT-2: 1 KV head, q/k dim 2, v dim 3 -> c_attn has 2*2 + 2 + 3 = 9 outputs.
  json g = tiny_gpt2_config();
  g["num_key_value_heads"] = 1;
  g["gqa_qk_head_dim"] = 2;
  g["gqa_v_head_dim"] = 3;
  const std::string gout = write_gpt2(d, "gpt2_grouped", g, 9);
  Checkpoint cg(gout);
  auto v = gqa::load_role(cg, Stack::Decoder, Role::AttnV, 0, {3, 8});
  EXPECT_EQ(v.data[0], 6.0f);            // output 6 = first v column
  EXPECT_EQ(v.data[2 * 8 + 7], 708.0f);  // [o=2, i=7] -> stored [7, 6+2]
  auto kb = gqa::load_role(cg, Stack::Decoder, Role::AttnKBias, 0, {2});
  EXPECT_EQ(kb.data, (std::vector<float>{4, 5}));
  // A grouped config over an MHA c_attn: the fused width disagrees.
  const std::string mixed = d.file("mixed");
  fs::copy(out, mixed);
  write_text(mixed + "/config.json", g.dump());
  Checkpoint cm(mixed);
  try {
    gqa::load_role(cm, Stack::Decoder, Role::AttnK, 0, {2, 8});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "transformer.h.0.attn.c_attn.weight");
    EXPECT_NE(std::string(e.what()).find("fused q/k/v has 24 outputs"), std::string::npos) << e.what();
  }
}

TEST(LoadRole, LocateTable) {
  auto neo = gqa::parse_config({{"model_type", "gpt_neo"},
                                {"vocab_size", 10},
                                {"hidden_size", 8},
                                {"num_layers", 1},
                                {"num_heads", 2},
                                {"max_position_embeddings", 4}},
                               "neo/config.json");
  EXPECT_FALSE(gqa::locate(neo, Stack::Decoder, Role::AttnQBias, 0).has_value());
  EXPECT_EQ(gqa::locate(neo, Stack::Decoder, Role::AttnQ, 3)->name, "transformer.h.3.attn.attention.q_proj.weight");
  json t5 = {{"model_type", "t5"},
             {"vocab_size", 10},
             {"d_model", 8},
             {"d_kv", 4},
             {"num_heads", 2},
             {"num_layers", 2},
             {"d_ff", 16},
             {"relative_attention_num_buckets", 8},
             {"relative_attention_max_distance", 16},
             {"feed_forward_proj", "gated-gelu"}};
  auto t = gqa::parse_config(t5, "t5/config.json");
  EXPECT_EQ(gqa::locate(t, Stack::Encoder, Role::FfnGate, 1)->name,
            "encoder.block.1.layer.1.DenseReluDense.wi_0.weight");
  EXPECT_EQ(gqa::locate(t, Stack::Decoder, Role::FfnUp, 0)->name, "decoder.block.0.layer.2.DenseReluDense.wi_1.weight");
  EXPECT_EQ(gqa::locate(t, Stack::Decoder, Role::CrossK, 1)->name, "decoder.block.1.layer.1.EncDecAttention.k.weight");
  auto gpt2 = gqa::parse_config(tiny_gpt2_config(), "g/config.json");
  auto loc = gqa::locate(gpt2, Stack::Decoder, Role::AttnV, 0);
  EXPECT_TRUE(loc->conv1d);
  EXPECT_EQ(loc->fused_part, 2);
  EXPECT_STREQ(gqa::role_name(Role::FfnDownBias), "ffn_down_bias");
  EXPECT_STREQ(gqa::role_name(Role::TokenEmbedding), "token_embedding");
}

}  // namespace
