// `gqa bench decode`, run as a child process on the parity oracle's tiny Llamas (tiny context, so
// it takes seconds): the ideal attention speedup equals the KV-bytes ratio computed here from the
// two config.json files, every JSON row has every field, and bad options exit 2 with one line.
// No timing thresholds: the timings are only checked to be positive numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/run_gqa.h"
#include "tests/test_util.h"

namespace {

using json = nlohmann::json;
using gqa::test::Result;
using gqa::test::run_gqa;
using gqa::test::Succeeded;
using gqa::test::UserError;

std::string oracle_case(const std::string& name) {
  const char* dir = std::getenv("GQA_ORACLE_DIR");
  if (!dir) return "";
  const std::string path = std::string(dir) + "/" + name;
  return gqa::files::is_directory(path) ? path : "";
}
#define ORACLE_OR_SKIP(var, name)            \
  const std::string var = oracle_case(name); \
  if (var.empty()) GTEST_SKIP() << "GQA_ORACLE_DIR/" name " missing (fixture parity_oracle)"

// K + V elements per token of all layers, from config.json alone (Llama fields).
int64_t kv_elements_per_token(const std::string& dir) {
  const json c = json::parse(gqa::test::read_text(dir + "/config.json"));
  const int64_t heads = c.at("num_attention_heads"), layers = c.at("num_hidden_layers");
  const int64_t kv = c.value("num_key_value_heads", heads);
  const int64_t hd = c.contains("head_dim") && !c["head_dim"].is_null() ? c["head_dim"].get<int64_t>()
                                                                        : c.at("hidden_size").get<int64_t>() / heads;
  return layers * 2 * kv * hd;
}

// A quick run: two tiny batches, 12 slots of context, one repeat, a 4 MiB copy. `extra` options
// replace these defaults when they name the same option, and are appended otherwise.
std::vector<std::string> quick(const std::string& model, const std::string& base,
                               const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a = {"bench", "decode",    model, "--baseline",   base, "--batch",
                                "1,3",   "--context", "12",  "--new-tokens", "4",  "--repeats",
                                "1",     "--threads", "1",   "--copy-mib",   "4"};
  for (size_t i = 0; i < extra.size(); ++i) {
    const bool has_value = i + 1 < extra.size() && extra[i + 1].rfind("--", 0) != 0;
    auto at = std::find(a.begin() + 3, a.end(), extra[i]);
    if (at != a.end() && has_value) {
      *(at + 1) = extra[++i];
      continue;
    }
    a.push_back(extra[i]);
    if (has_value) a.push_back(extra[++i]);
  }
  return a;
}

gqa::test::RunOptions slow() {
  gqa::test::RunOptions o;
  o.timeout_seconds = 120;
  return o;
}

std::vector<json> json_rows(const Result& r) {
  std::vector<json> rows;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      rows.push_back(json::parse(line));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << line << " (" << e.what() << ")";
    }
  }
  return rows;
}

const char* kNumberFields[] = {"threads",
                               "batch",
                               "context",
                               "prompt_len",
                               "new_tokens",
                               "repeats",
                               "ms_per_step",
                               "ms_per_step_min",
                               "baseline_ms_per_step",
                               "baseline_ms_per_step_min",
                               "speedup",
                               "tokens_per_s",
                               "kv_cache_bytes",
                               "baseline_kv_cache_bytes",
                               "kv_bytes_per_token",
                               "baseline_kv_bytes_per_token",
                               "kv_bytes_read_per_step",
                               "baseline_kv_bytes_read_per_step",
                               "ideal_attention_speedup",
                               "attention_ms",
                               "attention_ms_min",
                               "baseline_attention_ms",
                               "baseline_attention_ms_min",
                               "attention_speedup",
                               "attention_bytes_read",
                               "baseline_attention_bytes_read",
                               "attention_gb_per_s",
                               "baseline_attention_gb_per_s",
                               "copy_bytes",
                               "copy_gb_per_s",
                               "attention_bw_fraction",
                               "baseline_attention_bw_fraction"};

void check_rows(const std::vector<json>& rows, const std::string& model, const std::string& base, int64_t elem,
                const std::string& dtype) {
  const int64_t m_tok = kv_elements_per_token(model) * elem, b_tok = kv_elements_per_token(base) * elem;
  ASSERT_EQ(rows.size(), 2u);
  const int64_t batches[] = {1, 3};
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& j = rows[i];
    for (const char* f : kNumberFields) {
      ASSERT_TRUE(j.contains(f)) << "missing " << f << ": " << j.dump();
      ASSERT_TRUE(j[f].is_number()) << f << ": " << j.dump();
      EXPECT_TRUE(std::isfinite(j[f].get<double>())) << f << ": " << j.dump();
      EXPECT_GT(j[f].get<double>(), 0) << f << ": " << j.dump();
    }
    EXPECT_EQ(j.at("metric"), "bench_decode");
    EXPECT_EQ(j.at("model"), model);
    EXPECT_EQ(j.at("baseline"), base);
    EXPECT_EQ(j.at("device"), "cpu");
    EXPECT_EQ(j.at("dtype"), dtype);
    const int64_t B = batches[i];
    EXPECT_EQ(j["batch"], B);
    EXPECT_EQ(j["context"], 12);
    EXPECT_EQ(j["prompt_len"], 8);
    EXPECT_EQ(j["new_tokens"], 4);
    EXPECT_EQ(j["threads"], 1);
    EXPECT_EQ(j["kv_bytes_per_token"], m_tok);
    EXPECT_EQ(j["baseline_kv_bytes_per_token"], b_tok);
    EXPECT_EQ(j["kv_cache_bytes"], m_tok * B * 12);
    EXPECT_EQ(j["baseline_kv_cache_bytes"], b_tok * B * 12);
    EXPECT_EQ(j["kv_bytes_read_per_step"], m_tok * B * 12);
    EXPECT_EQ(j["baseline_kv_bytes_read_per_step"], b_tok * B * 12);
    // The definition: baseline KV bytes read per step / model KV bytes read per step.
    EXPECT_DOUBLE_EQ(j["ideal_attention_speedup"].get<double>(), double(b_tok) / double(m_tok));
    EXPECT_GT(j["attention_bytes_read"].get<int64_t>(), j["kv_bytes_read_per_step"].get<int64_t>());
    EXPECT_DOUBLE_EQ(j["attention_gb_per_s"].get<double>(),
                     j["attention_bytes_read"].get<double>() / (j["attention_ms"].get<double>() * 1e-3) / 1e9);
    EXPECT_DOUBLE_EQ(j["attention_bw_fraction"].get<double>(),
                     j["attention_gb_per_s"].get<double>() / j["copy_gb_per_s"].get<double>());
    EXPECT_DOUBLE_EQ(j["speedup"].get<double>(),
                     j["baseline_ms_per_step"].get<double>() / j["ms_per_step"].get<double>());
    EXPECT_EQ(j["copy_bytes"], 4 << 20);
  }
}

TEST(BenchDecode, IdealSpeedupIsTheConfigKvRatioAndJsonHasEveryField) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  // 3 layers x 2 KV heads x 12 vs 2 layers x 4 KV heads x 16: an independent check of the fields read.
  EXPECT_EQ(kv_elements_per_token(gqa_dir), 3 * 2 * 2 * 12);
  EXPECT_EQ(kv_elements_per_token(mha_dir), 2 * 2 * 4 * 16);
  const Result r = run_gqa(quick(gqa_dir, mha_dir, {"--json"}), slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  EXPECT_TRUE(r.err.empty()) << r.err;
  check_rows(json_rows(r), gqa_dir, mha_dir, 4, "f32");
}

TEST(BenchDecode, Bf16CacheHalvesTheBytesNotTheRatio) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const Result r = run_gqa(quick(gqa_dir, mha_dir, {"--json", "--dtype", "bf16"}), slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  check_rows(json_rows(r), gqa_dir, mha_dir, 2, "bf16");
}

TEST(BenchDecode, TableStatesTheDefinition) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const Result r = run_gqa(quick(gqa_dir, mha_dir), slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  EXPECT_NE(r.out.find("ideal attention speedup = baseline KV bytes read per decode step / model KV bytes read"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("copy bandwidth:"), std::string::npos) << r.out;
  // Baseline 2 x 2 x 4 x 16 = 256 elements per token, model 3 x 2 x 2 x 12 = 144: 1.78x.
  EXPECT_NE(r.out.find(": 1.78x"), std::string::npos) << r.out;
  const Result h = run_gqa({"bench", "decode", "--help"});
  ASSERT_TRUE(Succeeded(h));
  EXPECT_NE(h.out.find("ideal attention speedup = baseline KV bytes read per decode step / model KV bytes read"),
            std::string::npos)
      << h.out;
  EXPECT_NE(h.out.find("--max-cache-gib"), std::string::npos) << h.out;
  EXPECT_TRUE(Succeeded(run_gqa({"bench", "--help"})));
}

// Each bad input: exit code 2, exactly one line on stderr holding `words`, nothing on stdout.
void expect_user_error(std::vector<std::string> args, const std::vector<std::string>& words) {
  const Result r = run_gqa(std::move(args));
  EXPECT_TRUE(UserError(r, words));
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(BenchDecode, BadNumbersExitTwoWithOneLine) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const auto bad = [&](std::vector<std::string> extra, std::vector<std::string> words) {
    expect_user_error(quick(gqa_dir, mha_dir, extra), words);
  };
  bad({"--context", "1000"}, {"--context", "1000", "128 positions"});  // both oracle Llamas have 128
  bad({"--context", "1"}, {"--context"});
  bad({"--context", "ten"}, {"context"});
  bad({"--new-tokens", "12"}, {"--new-tokens", "prompt"});
  bad({"--new-tokens", "0"}, {"--new-tokens"});
  bad({"--batch", "0"}, {"--batch"});
  bad({"--batch", "1,x"}, {"--batch"});
  bad({"--repeats", "0"}, {"--repeats"});
  expect_user_error(
      {"bench", "decode", gqa_dir, "--baseline", mha_dir, "--context", "12", "--new-tokens", "4", "--threads=-1"},
      {"--threads"});
}

TEST(BenchDecode, BadDeviceDtypeAndCacheLimitExitTwoWithOneLine) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const auto bad = [&](std::vector<std::string> extra, std::vector<std::string> words) {
    expect_user_error(quick(gqa_dir, mha_dir, extra), words);
  };
  bad({"--dtype", "f64"}, {"--dtype", "f64"});
  bad({"--device", "tpu"}, {"--device", "tpu"});
  bad({"--device", "cuda:99"}, {"--device", "cuda:99"});
  bad({"--max-cache-gib", "0"}, {"--max-cache-gib"});
  bad({"--max-cache-gib", "nan"}, {"--max-cache-gib"});
  bad({"--frobnicate"}, {"frobnicate"});
  // The cache limit is checked from config.json before loading: bytes named, nothing measured.
  bad({"--batch", "1,100000", "--max-cache-gib", "0.01"}, {"--max-cache-gib", "100000", "bytes/token", "GiB"});
}

TEST(BenchDecode, BadSubCommandsAndFoldersExitTwoWithOneLine) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  ORACLE_OR_SKIP(t5_dir, "t5_v11");
  expect_user_error({"bench"}, {"sub-command"});
  expect_user_error({"bench", "prefill"}, {"prefill"});
  expect_user_error({"bench", "decode", gqa_dir}, {"baseline"});
  expect_user_error(quick(gqa_dir, "/nonexistent/gqa-bench-dir"), {"/nonexistent/gqa-bench-dir"});
  expect_user_error(quick(t5_dir, mha_dir), {"t5 is an encoder-decoder"});
  expect_user_error(quick(gqa_dir, t5_dir), {"t5 is an encoder-decoder"});
}

}  // namespace

namespace {

// `gqa eval --speed --baseline`: one JSON row per batch size carrying the baseline's figures from
// the same run, the KV-cache ratio of the two configs, peak memory and the thread count asked for.
TEST(EvalSpeed, JsonRowsCarryTheBaselineKvRatioPeakAndThreads) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const Result r = run_gqa({"eval", gqa_dir, "--speed", "--baseline", mha_dir, "--batch-sizes", "1,3", "--prompt-len",
                            "8", "--new-tokens", "3", "--repeats", "1", "--threads", "1", "--json"},
                           slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  const std::vector<json> rows = json_rows(r);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& j = rows[i];
    EXPECT_EQ(j.at("metric"), "decode");
    EXPECT_EQ(j.at("batch").get<int64_t>(), i == 0 ? 1 : 3);
    EXPECT_EQ(j.at("threads").get<int>(), 1);
    EXPECT_GT(j.at("peak_bytes").get<int64_t>(), 0);
    EXPECT_GT(j.at("ms_per_step").get<double>(), 0);
    EXPECT_DOUBLE_EQ(j.at("speedup").get<double>(),
                     j.at("baseline_ms_per_step").get<double>() / j.at("ms_per_step").get<double>());
    // The cache holds prompt + new tokens per sequence, so the byte ratio is the per-token one.
    EXPECT_DOUBLE_EQ(
        double(j.at("kv_cache_bytes").get<int64_t>()) / double(j.at("baseline_kv_cache_bytes").get<int64_t>()),
        double(kv_elements_per_token(gqa_dir)) / double(kv_elements_per_token(mha_dir)));
  }
  expect_user_error({"eval", gqa_dir, "--speed", "--threads", "-2"}, {"--threads"});
}

// The table `gqa eval --speed` prints without --json: the KV-cache column as a byte size.
TEST(EvalSpeed, TablePrintsTheKvCacheAsAByteSize) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  const Result r = run_gqa({"eval", gqa_dir, "--speed", "--batch-sizes", "1", "--prompt-len", "8", "--new-tokens", "3",
                            "--repeats", "1", "--threads", "1"},
                           slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  // 576 bytes per token (3 layers x 2 KV heads x (12 + 12) x 4 bytes) x 11 slots = 6,336 bytes.
  EXPECT_NE(r.out.find("      6.2 KiB "), std::string::npos) << r.out;
}

}  // namespace

namespace {

// `gqa eval --csv`: the records --json prints, as one CSV table with a header row (the mixing of
// record kinds is compare.report.RecordsCsv's test).
TEST(EvalSpeed, CsvHasTheJsonRecordsAsRows) {
  ORACLE_OR_SKIP(gqa_dir, "llama_gqa_h6kv2");
  ORACLE_OR_SKIP(mha_dir, "llama_mha");
  const std::vector<std::string> args = {"eval", gqa_dir,        "--speed", "--baseline",   mha_dir, "--batch-sizes",
                                         "1,2",  "--prompt-len", "4",       "--new-tokens", "2",     "--repeats",
                                         "1",    "--threads",    "1"};
  std::vector<std::string> csv_args = args, json_args = args;
  csv_args.push_back("--csv");
  json_args.push_back("--json");
  const Result r = run_gqa(csv_args, slow()), j = run_gqa(json_args, slow());
  ASSERT_TRUE(Succeeded(r)) << r.describe();
  ASSERT_TRUE(Succeeded(j)) << j.describe();
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << r.out;  // header + batch 1 + batch 2
  const std::vector<json> rows = json_rows(j);
  ASSERT_EQ(rows.size(), 2u);
  // The header is the JSON record's keys (sorted, as nlohmann::json keeps them).
  std::string header;
  for (auto it = rows[0].begin(); it != rows[0].end(); ++it) header += (header.empty() ? "" : ",") + it.key();
  EXPECT_EQ(lines[0], header);
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), ','), std::count(header.begin(), header.end(), ','))
        << lines[i];
    EXPECT_NE(lines[i].find(",decode,"), std::string::npos) << lines[i];
  }
  expect_user_error({"eval", gqa_dir, "--speed", "--json", "--csv"}, {"--json/--csv"});
}

}  // namespace
