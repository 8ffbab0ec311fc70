// The `gqa` command line, run as a child process: `gqa inspect` on the parity oracle's
// transformers-written folders (GQA, uneven groups, reduced head dims, sharded, bf16, T5) and bad
// inputs, each of which must exit with code 2 (not a signal) and print exactly one line on stderr
// naming the file (and field), within a time limit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/options.h"
#include "tests/cli/run_gqa.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using gqa::test::read_text;
using gqa::test::Result;
using gqa::test::run_gqa;
using gqa::test::Succeeded;
using gqa::test::UserError;
using gqa::test::write_text;

struct TempDir : gqa::test::TempDirWithPath<fs::path> {
  TempDir() : TempDirWithPath("gqa-cli") {}
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s;
}

// The parity oracle's folders (CTest fixture parity_oracle); tests needing them skip without it.
std::string oracle_case(const std::string& name) {
  const char* dir = std::getenv("GQA_ORACLE_DIR");
  if (!dir || !fs::is_directory(std::string(dir) + "/" + name)) return "";
  return std::string(dir) + "/" + name;
}
#define ORACLE_OR_SKIP(var, name)            \
  const std::string var = oracle_case(name); \
  if (var.empty()) GTEST_SKIP() << "GQA_ORACLE_DIR/" name " missing (fixture parity_oracle)"

// Copies an oracle folder (model + config only) to `dst`.
void copy_case(const std::string& src, const std::string& dst) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string n = e.path().filename().string();
    if (n == "reference.safetensors" || n == "case.json") continue;
    fs::copy_file(e.path(), dst + "/" + n);
  }
}

json read_json(const std::string& path) { return json::parse(read_text(path)); }
void edit_config(const std::string& dir, const std::function<void(json&)>& f) {
  json c = read_json(dir + "/config.json");
  f(c);
  write_text(dir + "/config.json", c.dump(2));
}

// A GPT-2 style byte-level tokenizer with no merges (one token per byte, filler tokens up to the
// model's vocabulary): enough for `generate` to get past the tokenizer to the weights.
void write_byte_tokenizer(const std::string& dir, int vocab_size = 384) {
  json vocab = json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string utf8;
    if (cp < 0x80) {
      utf8 += char(cp);
    } else {
      utf8 += char(0xc0 | (cp >> 6));
      utf8 += char(0x80 | (cp & 0x3f));
    }
    vocab[utf8] = b;
  }
  for (int id = 256; id < vocab_size; ++id) vocab["<extra_" + std::to_string(id) + ">"] = id;
  write_text(dir + "/vocab.json", vocab.dump());
  write_text(dir + "/merges.txt", "#version: 0.2\n");
}

// A folder with a valid Llama config.json and the given model.safetensors bytes.
std::string crafted_folder(const TempDir& d, const std::string& name, const std::string& st_bytes) {
  const std::string dir = d.file(name);
  fs::create_directories(dir);
  json cfg = {{"model_type", "llama"},        {"vocab_size", 16},         {"hidden_size", 8},
              {"num_hidden_layers", 1},       {"num_attention_heads", 2}, {"intermediate_size", 16},
              {"max_position_embeddings", 32}};
  write_text(dir + "/config.json", cfg.dump());
  write_text(dir + "/model.safetensors", st_bytes);
  return dir;
}

json inspect_json(const std::string& dir, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"inspect", dir, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const Result r = run_gqa(args);
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(r.err.empty()) << r.err;
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "inspect --json printed invalid JSON: " << e.what() << "\n" << r.out;
    return json::object();
  }
}

// layers * n_kv * (dqk + dv) * bytes, from the config.json fields.
int64_t expected_kv_bytes(const json& cfg, int64_t elem) {
  const int64_t heads = cfg.value("num_attention_heads", cfg.value("n_head", 0));
  const int64_t hidden = cfg.value("hidden_size", cfg.value("n_embd", 0));
  const int64_t layers = cfg.value("num_hidden_layers", cfg.value("n_layer", 0));
  const int64_t n_kv = cfg.value("num_key_value_heads", heads);
  const int64_t hd =
      cfg.contains("head_dim") && !cfg["head_dim"].is_null() ? cfg["head_dim"].get<int64_t>() : hidden / heads;
  const int64_t dqk = cfg.value("gqa_qk_head_dim", hd), dv = cfg.value("gqa_v_head_dim", hd);
  return layers * n_kv * (dqk + dv) * elem;
}

// ---------------------------------------------------------------------------------------------
// inspect

TEST(Inspect, GqaLlamaTable) {
  ORACLE_OR_SKIP(dir, "llama_gqa_h6kv2");
  const Result r = run_gqa({"inspect", dir});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("family          llama\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6q/2kv [3,3] qk12 v12"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layers 0-2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("576 bytes/token (F32); context 128 x batch 1 = 72.0 KiB\n"), std::string::npos) << r.out;
}

TEST(Inspect, GqaLlamaJson) {
  ORACLE_OR_SKIP(dir, "llama_gqa_h6kv2");
  const json cfg = read_json(dir + "/config.json");
  const json j = inspect_json(dir);
  EXPECT_EQ(j["family"], "llama");
  EXPECT_EQ(j["decoder_layers"], cfg["num_hidden_layers"]);
  EXPECT_EQ(j["d_model"], cfg["hidden_size"]);
  EXPECT_EQ(j["dtype"], "F32");
  EXPECT_EQ(j["shards"], json::array({"model.safetensors"}));
  ASSERT_EQ(j["attention"]["decoder_self"].size(), 1u);  // all layers alike: one run
  const json& run = j["attention"]["decoder_self"][0];
  EXPECT_EQ(run["query_heads"], 6);
  EXPECT_EQ(run["kv_heads"], 2);
  EXPECT_EQ(run["group_sizes"], json::array({3, 3}));
  EXPECT_EQ(run["group_map"], json::array({0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(run["head_dim_qk"], 12);
  EXPECT_EQ(run["head_dim_v"], 12);
  EXPECT_EQ(run["first_layer"], 0);
  EXPECT_EQ(run["last_layer"], 2);
  const int64_t per_token = j["kv_cache"]["bytes_per_token"];
  EXPECT_EQ(per_token, 3 * 2 * (12 + 12) * 4);
  EXPECT_EQ(per_token, expected_kv_bytes(cfg, 4));
  EXPECT_EQ(j["kv_cache"]["context"], cfg["max_position_embeddings"]);
  EXPECT_EQ(j["kv_cache"]["bytes"].get<int64_t>(), per_token * cfg["max_position_embeddings"].get<int64_t>());
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
}

TEST(Inspect, ContextAndBatch) {
  ORACLE_OR_SKIP(dir, "llama_gqa_h6kv2");
  const json j = inspect_json(dir, {"--context", "1000", "--batch", "3"});
  EXPECT_EQ(j["kv_cache"]["context"], 1000);
  EXPECT_EQ(j["kv_cache"]["batch"], 3);
  EXPECT_EQ(j["kv_cache"]["bytes"].get<int64_t>(), 576 * 1000 * 3);
}

TEST(Inspect, UnevenGroups) {
  ORACLE_OR_SKIP(dir, "llama_grouped_uneven");
  const json j = inspect_json(dir);
  const json& run = j["attention"]["decoder_self"][0];
  EXPECT_EQ(run["query_heads"], 8);
  EXPECT_EQ(run["kv_heads"], 3);
  EXPECT_EQ(run["group_sizes"], json::array({3, 3, 2}));
  EXPECT_EQ(run["group_map"], json::array({0, 0, 0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(j["kv_cache"]["bytes_per_token"], 2 * 3 * (8 + 8) * 4);
  const Result r = run_gqa({"inspect", dir});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_NE(r.out.find("8q/3kv [3,3,2]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("map 0,0,0,1,1,1,2,2"), std::string::npos) << r.out;

  ORACLE_OR_SKIP(g, "gpt2_grouped_uneven");
  const json jg = inspect_json(g);
  EXPECT_EQ(jg["family"], "gpt2");
  const json& rg = jg["attention"]["decoder_self"][0];
  EXPECT_EQ(rg["group_sizes"], json::array({3, 3, 2}));
  EXPECT_EQ(rg["head_dim_qk"], 6);
  EXPECT_EQ(rg["head_dim_v"], 5);
  EXPECT_EQ(jg["kv_cache"]["bytes_per_token"], 2 * 3 * (6 + 5) * 4);
  EXPECT_EQ(jg["kv_cache"]["bytes_per_token"], expected_kv_bytes(read_json(g + "/config.json"), 4));
}

TEST(Inspect, KvBytesDropByTheGroupRatio) {
  ORACLE_OR_SKIP(uneven, "llama_grouped_uneven");
  ORACLE_OR_SKIP(gqa2, "llama_gqa_h6kv2");
  TempDir d;
  // The same configs as MHA (inspect reads tensor headers only, so the weights can stay).
  const std::string mha_u = d.file("mha_uneven"), mha_g = d.file("mha_gqa");
  copy_case(uneven, mha_u);
  edit_config(mha_u, [](json& c) {
    c.erase("gqa_group_map");
    c["num_key_value_heads"] = 8;
  });
  copy_case(gqa2, mha_g);
  edit_config(mha_g, [](json& c) { c["num_key_value_heads"] = 6; });
  const int64_t grouped_u = inspect_json(uneven)["kv_cache"]["bytes_per_token"];
  const int64_t full_u = inspect_json(mha_u)["kv_cache"]["bytes_per_token"];
  const int64_t grouped_g = inspect_json(gqa2)["kv_cache"]["bytes_per_token"];
  const int64_t full_g = inspect_json(mha_g)["kv_cache"]["bytes_per_token"];
  EXPECT_EQ(full_u * 3, grouped_u * 8);  // 8 query heads, 3 KV heads
  EXPECT_EQ(full_g, grouped_g * 3);      // 6 query heads, 2 KV heads
  EXPECT_EQ(full_u, 2 * 8 * 16 * 4);
}

TEST(Inspect, ShardedBf16AndT5) {
  ORACLE_OR_SKIP(sharded, "llama_mqa_sharded");
  const json s = inspect_json(sharded);
  std::set<std::string> files;
  const json index = read_json(sharded + "/model.safetensors.index.json");
  for (const auto& f : index["weight_map"]) files.insert(f.get<std::string>());
  ASSERT_GT(files.size(), 1u);
  EXPECT_EQ(s["shards"].size(), files.size());
  char first[64];
  std::snprintf(first, sizeof first, "model-00001-of-%05zu.safetensors", files.size());
  EXPECT_EQ(s["shards"][0], first);
  EXPECT_EQ(s["attention"]["decoder_self"][0]["kv_heads"], 1);
  EXPECT_EQ(s["kv_cache"]["bytes_per_token"], expected_kv_bytes(read_json(sharded + "/config.json"), 4));

  ORACLE_OR_SKIP(bf16, "llama_bf16");
  const json b = inspect_json(bf16);
  EXPECT_EQ(b["dtype"], "BF16");
  EXPECT_EQ(b["kv_cache"]["dtype"], "BF16");
  EXPECT_EQ(b["kv_cache"]["bytes_per_token"], expected_kv_bytes(read_json(bf16 + "/config.json"), 2));

  ORACLE_OR_SKIP(t5, "t5_v11");
  const json t = inspect_json(t5);
  EXPECT_EQ(t["family"], "t5");
  EXPECT_EQ(t["encoder_layers"], 2);
  EXPECT_EQ(t["decoder_layers"], 3);
  for (const char* m : {"encoder_self", "decoder_self", "decoder_cross"}) EXPECT_TRUE(t["attention"].contains(m)) << m;
  EXPECT_EQ(t["kv_cache"]["bytes_per_token"], 3 * 6 * (8 + 8) * 4);
  EXPECT_EQ(t["kv_cache"]["cross_bytes_per_source_token"], 3 * 6 * (8 + 8) * 4);
  EXPECT_EQ(t["kv_cache"]["context"], 2048);  // T5 has no position limit
  const Result r = run_gqa({"inspect", t5});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_NE(r.out.find("cross kv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("encoder 2, decoder 3"), std::string::npos) << r.out;
}

TEST(Inspect, EveryOracleCase) {
  const char* root = std::getenv("GQA_ORACLE_DIR");
  if (!root || !fs::is_directory(root)) GTEST_SKIP() << "no GQA_ORACLE_DIR";
  int n = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    const json j = inspect_json(e.path().string());
    EXPECT_TRUE(j.contains("kv_cache")) << e.path();
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(Cli, HelpAndUsage) {
  EXPECT_TRUE(Succeeded(run_gqa({"--help"})));
  const Result h = run_gqa({"inspect", "--help"});
  EXPECT_TRUE(Succeeded(h));
  EXPECT_NE(h.out.find("--context"), std::string::npos);
  const Result none = run_gqa({});
  EXPECT_EQ(none.exit_code, 2) << none.describe();
  EXPECT_EQ(none.err, "gqa: error: no verb given (run gqa --help for the list)\n");
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: exit 2, one line on stderr naming the file (and field)

TEST(BadInput, MissingFolderAndFile) {
  TempDir d;
  EXPECT_TRUE(UserError(run_gqa({"inspect", d.file("nope")}), {d.file("nope"), "does not exist"}));
  write_text(d.file("plain"), "x");
  EXPECT_TRUE(UserError(run_gqa({"inspect", d.file("plain")}), {d.file("plain"), "not a folder"}));
  fs::create_directory(d.file("empty"));
  EXPECT_TRUE(UserError(run_gqa({"inspect", d.file("empty")}), {d.file("empty") + "/config.json"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", d.file("nope"), "--prompt", "hi"}), {d.file("nope")}));
}

TEST(BadInput, TruncatedSafetensors) {
  ORACLE_OR_SKIP(src, "llama_mha");
  TempDir d;
  const std::string dir = d.file("m");
  copy_case(src, dir);
  const std::string st = dir + "/model.safetensors";
  fs::resize_file(st, fs::file_size(st) - 4);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {st, "data_offsets", "truncated"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--json"}), {st, "data_offsets"}));
  fs::resize_file(st, 100);  // cut inside the header
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {st, "header length"}));
  fs::resize_file(st, 5);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {st, "header"}));
}

TEST(BadInput, HeaderLengthLargerThanFile) {
  ORACLE_OR_SKIP(src, "llama_mha");
  TempDir d;
  const std::string dir = d.file("m");
  copy_case(src, dir);
  const std::string st = dir + "/model.safetensors";
  std::string bytes = read_text(st);
  bytes.replace(0, 8, le64(bytes.size()));
  write_text(st, bytes);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {st, "header length", "larger than the file"}));
  bytes.replace(0, 8, le64(uint64_t(1) << 63));
  write_text(st, bytes);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {st, "header length"}));
}

TEST(BadInput, CraftedHeaders) {
  TempDir d;
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  struct Case {
    const char* name;
    std::string header, data;
    std::vector<std::string> words;
  };
  const Case cases[] = {
      {"overlap",
       "{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[4,12]}})",
       std::string(12, '\0'),
       {"b.data_offsets", "overlaps"}},
      {"out_of_range",
       "{\"a\":{" + f32x2 + R"(,"data_offsets":[0,800]}})",
       std::string(8, '\0'),
       {"a.data_offsets", "beyond"}},
      {"huge_offset",
       "{\"a\":{" + f32x2 + R"(,"data_offsets":[18446744073709551607,18446744073709551615]}})",
       std::string(8, '\0'),
       {"a.data_offsets"}},
      {"unknown_dtype",
       R"({"a":{"dtype":"F8_X","shape":[2],"data_offsets":[0,2]}})",
       std::string(2, '\0'),
       {"a.dtype", "F8_X"}},
      {"bad_shape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0'), {"a.shape"}},
      {"shape_overflow",
       R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})",
       std::string(8, '\0'),
       {"a.shape"}},
      {"gap",
       "{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[12,20]}})",
       std::string(20, '\0'),
       {"b.data_offsets", "gap"}},
      {"not_json", "{\"a\":", "", {"header", "invalid JSON"}},
      {"metadata", R"({"__metadata__":{"format":1}})", "", {"__metadata__.format"}},
  };
  for (const auto& c : cases) {
    const std::string dir = crafted_folder(d, c.name, le64(c.header.size()) + c.header + c.data);
    std::vector<std::string> words = c.words;
    words.push_back(dir + "/model.safetensors");
    EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), words)) << c.name;
  }
}

TEST(BadInput, ConfigFields) {
  ORACLE_OR_SKIP(src, "llama_gqa_h6kv2");
  TempDir d;
  const std::string dir = d.file("m");
  copy_case(src, dir);
  const std::string cfg = dir + "/config.json";
  edit_config(dir, [](json& c) { c["model_type"] = "bert"; });
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "model_type", "bert"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x"}), {cfg, "model_type"}));
  edit_config(dir, [](json& c) {
    c["model_type"] = "llama";
    c["num_key_value_heads"] = 4;
  });
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "num_key_value_heads"}));
  edit_config(dir, [](json& c) {
    c["num_key_value_heads"] = 2;
    c["gqa_group_map"] = {0, 0, 2, 2, 2, 2};
  });
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "gqa_group_map"}));
  edit_config(dir, [](json& c) {
    c.erase("gqa_group_map");
    c["hidden_size"] = "96";
  });
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "hidden_size"}));
  edit_config(dir, [](json& c) {
    c["hidden_size"] = 96;
    c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  });
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "rope_parameters.rope_type", "yarn"}));
  write_text(cfg, "{\"model_type\": ");
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg, "invalid JSON"}));
  fs::remove(cfg);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {cfg}));
}

TEST(BadInput, ShardedIndexAndPickle) {
  ORACLE_OR_SKIP(src, "llama_mqa_sharded");
  TempDir d;
  const std::string dir = d.file("m");
  copy_case(src, dir);
  const json index = read_json(dir + "/model.safetensors.index.json");
  const std::string shard = index["weight_map"]["model.norm.weight"];
  fs::remove(dir + "/" + shard);
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir}), {dir + "/" + shard, "cannot open"}));
  json bad = index;
  bad["weight_map"]["model.norm.weight"] = "../" + shard;
  write_text(dir + "/model.safetensors.index.json", bad.dump());
  EXPECT_TRUE(
      UserError(run_gqa({"inspect", dir}), {dir + "/model.safetensors.index.json", "weight_map.model.norm.weight"}));

  const std::string pk = d.file("pickle");
  fs::create_directory(pk);
  fs::copy_file(src + "/config.json", pk + "/config.json");
  write_text(pk + "/pytorch_model.bin", "PK");
  EXPECT_TRUE(UserError(run_gqa({"inspect", pk}), {pk, "pytorch_model.bin", "save_pretrained"}));
}

TEST(BadInput, MissingTokenizer) {
  ORACLE_OR_SKIP(src, "llama_mha");
  ASSERT_FALSE(fs::exists(src + "/tokenizer.json"));
  EXPECT_TRUE(UserError(run_gqa({"generate", src, "--prompt", "hello"}), {src, "tokenizer"}));
}

TEST(Generate, RunsWithAByteTokenizer) {
  ORACLE_OR_SKIP(src, "llama_mha");
  TempDir d;
  const std::string dir = d.file("m");
  copy_case(src, dir);
  write_byte_tokenizer(dir);
  const Result r = run_gqa({"generate", dir, "--prompt", "ab", "-n", "3"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.out.rfind("ab", 0), 0u) << r.out;  // the prompt, then the continuation
}

TEST(BadInput, TensorShapeDisagreesWithConfig) {
  ORACLE_OR_SKIP(src, "llama_gqa_h6kv2");
  TempDir d;
  // 6 query heads; config now says 3 KV heads, the checkpoint's k_proj holds 2.
  const std::string dir = d.file("kv");
  copy_case(src, dir);
  write_byte_tokenizer(dir);
  edit_config(dir, [](json& c) { c["num_key_value_heads"] = 3; });
  EXPECT_TRUE(Succeeded(run_gqa({"inspect", dir})));  // headers alone are consistent
  EXPECT_TRUE(UserError(
      run_gqa({"generate", dir, "--prompt", "ab", "-n", "2"}),
      {dir + "/model.safetensors", "self_attn.k_proj.weight", "[24, 96]", "[36, 96]", "disagrees with config.json"}));
  // Hidden size edited: the embedding (the first thing loaded) disagrees.
  ORACLE_OR_SKIP(mha, "llama_mha");
  const std::string dir2 = d.file("hidden");
  copy_case(mha, dir2);
  write_byte_tokenizer(dir2);
  edit_config(dir2, [](json& c) { c["hidden_size"] = 80; });
  EXPECT_TRUE(UserError(run_gqa({"generate", dir2, "--prompt", "ab", "-n", "2"}),
                        {dir2 + "/model.safetensors", "disagrees with config.json"}));
}

TEST(BadInput, UnknownVerb) {
  const Result r = run_gqa({"frobnicate", "x"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.err, "gqa: error: unknown verb 'frobnicate' (run gqa --help for the list)\n");
  EXPECT_TRUE(r.out.empty());
}

TEST(BadInput, BadOptions) {
  ORACLE_OR_SKIP(dir, "llama_gqa_h6kv2");
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--context", "abc"}), {"context"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--context", "-5"}), {"context"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--batch", "0"}), {"batch"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--batch", "1.5"}), {"batch"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--bogus"}), {"bogus"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, "--context"}), {"context"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect"}), {"missing argument 1: Hugging Face model folder"}));
  EXPECT_TRUE(UserError(run_gqa({"inspect", dir, dir}), {}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir}), {"prompt"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x", "--top-p", "2"}), {"--top-p"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x", "--temperature", "0"}), {"--temperature"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x", "-n", "0"}), {"--max-new-tokens"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x", "-n", "many"}), {"max-new-tokens"}));
  EXPECT_TRUE(UserError(run_gqa({"generate", dir, "--prompt", "x", "--seed", "x1"}), {"seed"}));
}

// gqa compare takes one uptraining budget: --uptrain-fraction beside --fraction (or --steps, ...),
// even one given as 0, is refused before anything runs.
TEST(BadInput, CompareWithTwoUptrainingBudgets) {
  ORACLE_OR_SKIP(dir, "llama_mha");
  TempDir d;
  const std::vector<std::string> base = {"compare",
                                         dir,
                                         d.file("out"),
                                         "--data",
                                         d.file("train.bin"),
                                         "--eval-data",
                                         d.file("test.txt"),
                                         "--uptrain-fraction",
                                         "0.05"};
  for (const std::vector<std::string>& other : std::vector<std::vector<std::string>>{
           {"--fraction", "0.1"}, {"--fraction", "0"}, {"--steps", "5"}, {"--epochs", "0"}}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), other.begin(), other.end());
    EXPECT_TRUE(UserError(run_gqa(args), {"--uptrain-fraction", other[0], "give one"})) << other[0] << " " << other[1];
  }
  EXPECT_FALSE(fs::exists(d.file("out")));
}

}  // namespace

namespace {

// gqa fold says what it does: one "gqa fold" line and the scalars folded per block, not the `first`
// strategy's "kept heads" (it keeps the first copy of each pooled head, which is not a choice).
TEST(Fold, SaysItFoldsScalars) {
  ORACLE_OR_SKIP(gpt2, "gpt2_h4");
  TempDir d;
  ASSERT_TRUE(Succeeded(run_gqa({"convert", gpt2, d.file("w"), "-s", "weighted", "--kv-heads", "2"})));
  const Result r = run_gqa({"fold", d.file("w"), d.file("f")});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_EQ(r.out.rfind("gqa fold: " + d.file("w") + " -> " + d.file("f") + " (gpt2)\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("converted decoder_self 0 (1/2): scalars folded into 2 KV heads"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("kept heads"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("strategy"), std::string::npos) << r.out;
}

// gqa convert / fold: every bad request exits 2 with one line and leaves no output folder.
// Latent (MLA) config fields parse, and inspect reports their cache (rank + rope dims per token and
// layer); a config that says latent over MHA tensors is refused in one line naming the tensor.
TEST(LatentFields, InspectReportsTheCacheAndEvalNamesTheTensorThatDisagrees) {
  ORACLE_OR_SKIP(llama, "llama_mha");
  TempDir d;
  const std::string dir = d.file("latent");
  copy_case(llama, dir);
  int64_t layers = 0, head_dim = 0;
  edit_config(dir, [&](json& c) {
    layers = c["num_hidden_layers"].get<int64_t>();
    head_dim = c["hidden_size"].get<int64_t>() / c["num_attention_heads"].get<int64_t>();
    c["num_key_value_heads"] = 1;
    c["gqa_qk_head_dim"] = head_dim + 2;
    c["gqa_latent"] = {{"rank", 6}, {"rope_dims", 2}, {"rope_pairs", {0}}};
  });
  const Result r = run_gqa({"inspect", dir, "--json"});
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  EXPECT_EQ(json::parse(r.out)["kv_cache"]["bytes_per_token"].get<int64_t>(), layers * (6 + 2) * 4);
  write_text(d.file("text.txt"), "Some held-out text to score, long enough for a few tokens.");
  // The config says latent, the tensors are still MHA's: the first latent tensor read disagrees.
  EXPECT_TRUE(
      UserError(run_gqa({"eval", dir, "--text", d.file("text.txt")}), {"q_proj.weight", "disagrees with config.json"}));
}

TEST(LatentFields, ConvertTargetMlaWritesAFolderThatInspectAndEvalRun) {
  ORACLE_OR_SKIP(llama, "llama_mha");
  TempDir d;
  const std::string src = d.file("src"), out = d.file("mla");
  copy_case(llama, src);
  write_byte_tokenizer(src);
  const Result c = run_gqa({"convert", src, out, "--target", "mla", "--kv-rank", "12", "--rope-dims", "4"});
  ASSERT_TRUE(Succeeded(c)) << c.describe();
  EXPECT_NE(c.out.find("latent rank 12"), std::string::npos) << c.out;
  const json cfg = json::parse(read_text(out + "/config.json"));
  EXPECT_EQ(cfg["gqa_latent"]["rank"], 12);
  EXPECT_EQ(cfg["gqa_conversion"]["strategy"], "mla");
  const Result r = run_gqa({"inspect", out, "--json"});
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  EXPECT_EQ(json::parse(r.out)["kv_cache"]["bytes_per_token"].get<int64_t>(),
            cfg["num_hidden_layers"].get<int64_t>() * (12 + 4) * 4);
  write_text(d.file("text.txt"), "Some held-out text to score, long enough for a few tokens.");
  const Result e = run_gqa({"eval", out, "--text", d.file("text.txt")});
  EXPECT_TRUE(Succeeded(e)) << e.describe();
}

// gqa compare --targets gqa,mla: an MLA cell beside each GQA cell, caching the same bytes per
// token (rank + rotary key = the K + V dims of that many KV heads), uptrained and measured alike,
// on one quality-vs-KV-bytes chart.
TEST(LatentFields, CompareTargetsPutMlaBesideGqaAtEqualKvBytes) {
  ORACLE_OR_SKIP(llama, "llama_mha");
  TempDir d;
  const std::string src = d.file("src");
  copy_case(llama, src);
  write_byte_tokenizer(src);
  std::string text;
  for (int i = 0; i < 60; ++i) text += "The quick brown fox jumps over the lazy dog, and the dog sleeps in the sun. ";
  write_text(d.file("train.txt"), text);
  write_text(d.file("test.txt"), text.substr(0, 2000));
  const Result r = run_gqa({"compare",
                            src,
                            d.file("cmp"),
                            "--targets",
                            "gqa,mla",
                            "--strategies",
                            "mean",
                            "--kv-heads",
                            "2",
                            "--data",
                            d.file("train.txt"),
                            "--steps",
                            "2",
                            "--seq-len",
                            "16",
                            "--batch-size",
                            "2",
                            "--eval-data",
                            d.file("test.txt"),
                            "--eval-tokens",
                            "128",
                            "--no-speed",
                            "--threads",
                            "1",
                            "--quiet"});
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  const json gqa = read_json(d.file("cmp/cells/mean-kv2.json")), mla = read_json(d.file("cmp/cells/mla-kv2.json"));
  const json cfg = read_json(src + "/config.json");
  const int64_t head_dim = cfg["hidden_size"].get<int64_t>() / cfg["num_attention_heads"].get<int64_t>();
  EXPECT_EQ(mla["kv_bytes_per_token"], gqa["kv_bytes_per_token"]);
  EXPECT_EQ(mla["latent_rope_dims"].get<int64_t>(), head_dim);
  EXPECT_EQ(mla["latent_rank"].get<int64_t>() + mla["latent_rope_dims"].get<int64_t>(), 2 * 2 * head_dim);
  EXPECT_TRUE(mla.contains("uptrained")) << mla.dump();
  EXPECT_TRUE(fs::exists(d.file("cmp/quality_vs_kv_bytes.svg")));
  EXPECT_NE(read_text(d.file("cmp/report.md")).find("MLA"), std::string::npos);
  EXPECT_TRUE(UserError(run_gqa({"compare", src, d.file("bad"), "--targets", "gqa,mqa", "--data", d.file("train.txt"),
                                 "--eval-data", d.file("test.txt")}),
                        {"--targets", "mqa"}));
}

TEST(ConvertBadInput, OneLineExitTwoNoOutput) {
  ORACLE_OR_SKIP(gpt2, "gpt2_h4");
  ORACLE_OR_SKIP(llama, "llama_mha");
  TempDir d;
  const std::string out = d.file("out");
  write_text(d.file("empty.txt"), "");
  write_text(d.file("short.txt"), "too short");
  auto no_output = [&] {
    for (const auto& e : fs::directory_iterator(d.path))
      if (e.path().filename().string().rfind("out", 0) == 0) return false;
    return true;
  };
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{"convert", gpt2, out, "--group-map", "0,0,1"}, {"--group-map", "one per query head"}},
      {{"convert", gpt2, out, "--group-map", "0,0,2,2"}, {"--group-map", "KV head 1 has no query heads"}},
      {{"convert", gpt2, out, "--group-map", "0,x,1,1"}, {"--group-map", "'x'"}},
      {{"convert", gpt2, out, "--kv-heads", "8"}, {"--kv-heads", "more than"}},
      {{"convert", gpt2, out, "--kv-heads", "3"}, {"--kv-heads", "does not divide", "--group-map (e.g. 0,0,1,2)"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--mqa"}, {"exactly one"}},
      {{"convert", gpt2, out}, {"gqa convert: error: --kv-heads/--mqa/--group-map: give exactly one"}},
      {{"convert", gpt2}, {"gqa convert: error: missing argument 2: output folder"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--dtype", "f8"}, {"--dtype", "f8"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--modules", "encoder-self"}, {"--modules", "only for T5"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--strategy", "best"}, {"--strategy", "unknown 'best'"}},
      {{"convert", gpt2, out, "--target", "mqa"}, {"--target", "expected gqa or mla"}},
      {{"convert", llama, out, "--target", "mla"}, {"--kv-rank", "needs the latent rank"}},
      {{"convert", gpt2, out, "--kv-rank", "8"}, {"--kv-rank", "only with --target mla"}},
      {{"convert", gpt2, out, "--target", "mla", "--kv-rank", "8", "--rope-dims", "4"},
       {"--rope-dims", "no rotary embeddings"}},
      {{"convert", llama, out, "--target", "mla", "--kv-rank", "8", "--mqa"}, {"--target", "mla", "--kv-rank"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--layers", "0-9"}, {"--layers"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--calib", d.file("missing.txt")}, {"missing.txt", "cannot open"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--calib", d.file("empty.txt")}, {"empty.txt", "empty"}},
      {{"convert", llama, out, "--kv-heads", "2", "--qk-head-dim", "7"}, {"--qk-head-dim", "even"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--report"}, {"--report", "--eval"}},
      {{"convert", gpt2, out, "--kv-heads", "2", "--export", "wide"}, {"--export"}},
      {{"convert", d.file("nowhere"), out, "--kv-heads", "2"}, {"nowhere"}},
      {{"fold", gpt2, out}, {"gqa_weighted", "no scalars"}},
  };
  for (const auto& [args, words] : cases) {
    const Result r = run_gqa(args);
    EXPECT_TRUE(UserError(r, words)) << args[1] << " " << (args.size() > 4 ? args[4] : "");
    EXPECT_EQ(r.out, "") << "a bad request prints only its error";
    EXPECT_TRUE(no_output()) << "output left behind by " << (args.size() > 4 ? args[4] : args[0]);
  }
  // An existing output folder is refused without --force and left untouched.
  fs::create_directory(out);
  write_text(out + "/keep.txt", "mine");
  EXPECT_TRUE(UserError(run_gqa({"convert", gpt2, out, "--kv-heads", "2"}), {"exists", "--force"}));
  EXPECT_EQ(read_text(out + "/keep.txt"), "mine");
  EXPECT_TRUE(Succeeded(run_gqa({"convert", gpt2, out, "--kv-heads", "2", "--force"})));
  EXPECT_FALSE(fs::exists(out + "/keep.txt"));
}

// Found with tests/fuzz/fuzz_cli_values (docs/robustness.md, "Fuzzing"): a list value beyond the
// item type wrapped ("--kv-heads 4294967298" was 2 KV heads, "41444444444444" a negative count).
TEST(CliValues, FuzzListValueBeyondItsType) {
  EXPECT_THROW(gqa::cli::split_list<int>("41444444444444", "--kv-heads"), gqa::InputError);
  try {
    gqa::cli::split_list<int>("8,4294967298", "--kv-heads");
    ADD_FAILURE() << "accepted";
  } catch (const gqa::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-heads: '4294967298' is too large (at most 2147483647)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(gqa::cli::split_list<int>("2147483647,1", "--kv-heads"), (std::vector<int>{2147483647, 1}));
  EXPECT_EQ(gqa::cli::split_list<int64_t>("4294967298", "--batch-sizes"), (std::vector<int64_t>{4294967298}));
}

}  // namespace
