// Issue #17's command-line guarantees at scale, run as child processes: a verb that will not fit
// in memory stops before loading (one line naming the need, what is available and the option that
// would fit; exit 2; nothing written), under a real limit (ulimit -d) smaller than the model; and
// two `gqa convert` runs into one new folder never silently replace each other's result.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "tests/cli/run_gqa.h"
#include "tests/test_util.h"

namespace {

using json = nlohmann::json;
using gqa::test::Result;
using gqa::test::run_gqa;
using gqa::test::run_program;
using gqa::test::Succeeded;
using gqa::test::UserError;

// A Llama folder with the project's 4096-token tokenizer. Sparse: float32 zeros as a hole in the
// safetensors file, so a 3.6 GB model costs no disk (the memory check reads only the header, so
// the refusal tests never touch the weights). Otherwise random weights (uniform in +-0.1, norms
// 1), for small models that must compute something layer-dependent.
std::string write_llama(const std::string& dir, int64_t d, int64_t layers, int64_t ffn, int64_t heads, bool sparse) {
  const int64_t vocab = 4096;
  ::mkdir(dir.c_str(), 0755);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"model.embed_tokens.weight", {vocab, d}}, {"lm_head.weight", {vocab, d}}, {"model.norm.weight", {d}}};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"})
      tensors.push_back({p + "self_attn." + n + ".weight", {d, d}});
    tensors.push_back({p + "mlp.gate_proj.weight", {ffn, d}});
    tensors.push_back({p + "mlp.up_proj.weight", {ffn, d}});
    tensors.push_back({p + "mlp.down_proj.weight", {d, ffn}});
    tensors.push_back({p + "input_layernorm.weight", {d}});
    tensors.push_back({p + "post_attention_layernorm.weight", {d}});
  }
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t bytes = 4;
    for (int64_t s : shape) bytes *= uint64_t(s);
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  {
    std::ofstream out(dir + "/model.safetensors", std::ios::binary);
    uint64_t n = h.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << h;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
    for (const auto& [name, shape] : tensors) {
      if (sparse) break;
      int64_t numel = 1;
      for (int64_t s : shape) numel *= s;
      std::vector<float> v(size_t(numel), 1.0f);
      if (shape.size() == 2)
        for (float& x : v) x = uniform(rng);
      out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
    }
  }
  if (sparse && ::truncate((dir + "/model.safetensors").c_str(), off_t(8 + h.size() + offset)) != 0)
    throw std::runtime_error("truncate failed");
  json cfg = {{"model_type", "llama"},
              {"architectures", {"LlamaForCausalLM"}},
              {"vocab_size", vocab},
              {"hidden_size", d},
              {"num_attention_heads", heads},
              {"num_key_value_heads", heads},
              {"intermediate_size", ffn},
              {"num_hidden_layers", layers},
              {"max_position_embeddings", 512},
              {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", false},
              {"torch_dtype", "float32"},
              {"bos_token_id", 0},
              {"eos_token_id", 0}};
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    gqa::files::copy_file(std::string(GQA_SOURCE_DIR) + "/examples/assets/bpe4096/" + f, dir + "/" + f);
  return dir;
}

std::string some_text() {
  std::string t;
  for (int i = 0; i < 200; ++i)
    t += "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
         "of a wife. ";
  return t;
}

// gqa under `ulimit -d` (the data-segment limit, which a process may always lower for itself):
// 1.5 GiB, far below the 3.6 GB model and above what gqa itself maps at start-up (LibTorch's
// libraries: 0.4-0.8 GB measured).
Result run_limited(const std::vector<std::string>& args) {
  std::string cmd = "ulimit -d 1572864 && exec '" + std::string(GQA_BIN) + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  return run_program({"/bin/bash", "-c", cmd});
}

TEST(MemoryRefusal, EvalGenerateAndCalibrationStopBeforeLoading) {
  gqa::test::TempDir tmp("gqa-memory");
  // 16 layers, d 2048, FFN 5632: 0.84 B parameters, 3.4 GiB in float32.
  const std::string big = write_llama(tmp.file("big"), 2048, 16, 5632, 16, /*sparse=*/true);
  gqa::test::write_text(tmp.file("text.txt"), some_text());

  Result r = run_limited({"eval", big, "--text", tmp.file("text.txt")});
  EXPECT_TRUE(UserError(r, {big, "needs about", "weights 3.", "in f32", "available (ulimit -d)"}));
  r = run_limited({"eval", big, "--text", tmp.file("text.txt"), "--dtype", "bf16"});
  EXPECT_TRUE(UserError(r, {big, "needs about", "in bf16", "available (ulimit -d)"}));
  r = run_limited({"generate", big, "--prompt", "It is", "-n", "4"});
  EXPECT_TRUE(UserError(r, {big, "needs about", "available (ulimit -d)"}));

  // Calibration runs one block at a time: what does not fit is the hidden states of two million
  // calibration tokens (2e6 x 2048 floats), and fewer tokens would.
  r = run_limited({"convert", big, tmp.file("out"), "--strategy", "svd", "--kv-heads", "4", "--calib",
                   tmp.file("text.txt"), "--calib-tokens", "2000000"});
  EXPECT_TRUE(UserError(r, {big, "needs about", "available (ulimit -d)", "--calib-tokens "}));
  EXPECT_FALSE(gqa::files::exists(tmp.file("out")));
  for (const auto& name : gqa::files::list_directory(tmp.path)) EXPECT_EQ(name.find("out."), std::string::npos) << name;

  // What fits runs under the same limit: the check does not refuse small models.
  const std::string small = write_llama(tmp.file("small"), 64, 2, 128, 4, /*sparse=*/false);
  r = run_limited({"eval", small, "--text", tmp.file("text.txt"), "--max-tokens", "256"});
  EXPECT_TRUE(Succeeded(r)) << r.describe();
  // --one-block scores the same text the same way, a block at a time.
  const Result streamed =
      run_limited({"eval", small, "--text", tmp.file("text.txt"), "--max-tokens", "256", "--one-block"});
  EXPECT_TRUE(Succeeded(streamed)) << streamed.describe();
  EXPECT_EQ(streamed.out, r.out);
  EXPECT_TRUE(UserError(run_gqa({"eval", small, "--speed", "--one-block"}), {"--one-block", "--text only"}));
  // Training checks its plan (uptrain/train_plan.h) the same way, before loading or creating OUT_DIR.
  r = run_limited(
      {"uptrain", big, tmp.file("trained"), "--data", tmp.file("text.txt"), "--steps", "1", "--seq-len", "64"});
  EXPECT_TRUE(UserError(r, {big, "training needs about", "per process", "available (ulimit -d)"}));
  EXPECT_FALSE(gqa::files::exists(tmp.file("trained")));
  r = run_limited({"uptrain", small, tmp.file("trained-small"), "--data", tmp.file("text.txt"), "--steps", "1",
                   "--seq-len", "32", "--batch-size", "2", "--quiet"});
  EXPECT_TRUE(Succeeded(r)) << r.describe();
  r = run_limited({"convert", small, tmp.file("small-svd"), "--strategy", "svd", "--kv-heads", "2", "--calib",
                   tmp.file("text.txt"), "--calib-tokens", "512", "--calib-seq-len", "64"});
  EXPECT_TRUE(Succeeded(r)) << r.describe();
  EXPECT_NE(r.out.find("calibration: 512 tokens"), std::string::npos) << r.out;
}

// Two conversions started together into one new folder: without --force exactly one publishes
// and the other stops with one line (whether it finds the folder at the start or when it
// publishes), and the folder is a whole conversion; with --force both finish and a replacement
// is said.
TEST(TwoWriters, OneOutputNeverSilentlyReplaced) {
  gqa::test::TempDir tmp("gqa-writers");
  const std::string src = write_llama(tmp.file("src"), 64, 2, 128, 4, /*sparse=*/false);
  for (const bool force : {false, true}) {
    const std::string out = tmp.file(force ? "forced" : "plain");
    std::vector<std::string> args = {"convert", src, out, "--strategy", "mean", "--kv-heads", "2"};
    if (force) args.push_back("--force");
    Result a, b;
    std::thread ta([&] { a = run_gqa(args); });
    std::thread tb([&] { b = run_gqa(args); });
    ta.join();
    tb.join();
    if (!force) {
      ASSERT_NE(a.exit_code == 0, b.exit_code == 0) << a.describe() << "\n" << b.describe();
      const Result& lost = a.exit_code == 0 ? b : a;
      const Result& won = a.exit_code == 0 ? a : b;
      EXPECT_TRUE(UserError(lost, {out})) << lost.describe();
      EXPECT_TRUE(lost.err.find("appeared while") != std::string::npos || lost.err.find("exists") != std::string::npos)
          << lost.err;
      EXPECT_NE(won.out.find("wrote " + out), std::string::npos) << won.out;
    } else {
      EXPECT_TRUE(Succeeded(a)) << a.describe();
      EXPECT_TRUE(Succeeded(b)) << b.describe();
      EXPECT_TRUE(a.out.find("replaced the existing " + out) != std::string::npos ||
                  b.out.find("replaced the existing " + out) != std::string::npos)
          << a.out << "\n"
          << b.out;
    }
    EXPECT_TRUE(Succeeded(run_gqa({"inspect", out})));
    for (const auto& name : gqa::files::list_directory(tmp.path))
      EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
}

}  // namespace
