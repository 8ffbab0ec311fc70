// Crash safety of the `gqa` binary (issue #8): SIGKILLed at random points, `gqa convert` leaves
// its output folder absent or complete (never half-written) and the next run clears the killed
// run's temp folder; on a full disk (a small tmpfs, or a file-size limit) convert and uptrain fail
// with one line naming the file and the reason, exit 2, leave no partial output, and uptraining
// keeps its last good checkpoint, from which --resume finishes on the same loss curve. gqa compare
// stopped by SIGTERM while uptraining a cell exits as gqa train does, the cell unsaved, and the
// same command run again resumes that uptraining.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "tests/cli/run_gqa.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using gqa::Checkpoint;
using gqa::CheckpointWriter;
using gqa::DType;
using gqa::test::read_text;
using gqa::test::Result;
using gqa::test::run_gqa;
using gqa::test::run_program;
using gqa::test::Succeeded;
using gqa::test::TempDir;
using gqa::test::UserError;
using gqa::test::write_text;

// A Llama MHA checkpoint big enough (13.6 M parameters, 55 MB) that converting it takes a while,
// so random kill times land in reading, converting and writing, not only in start-up.
void write_llama(const std::string& dir) {
  const int64_t d = 384, ffn = 1024, vocab = 4096, layers = 6;
  CheckpointWriter w(dir, false);
  w.set_config({{"model_type", "llama"},
                {"architectures", {"LlamaForCausalLM"}},
                {"vocab_size", vocab},
                {"hidden_size", d},
                {"num_hidden_layers", layers},
                {"num_attention_heads", 8},
                {"num_key_value_heads", 8},
                {"intermediate_size", ffn},
                {"max_position_embeddings", 256},
                {"rms_norm_eps", 1e-6},
                {"tie_word_embeddings", false},
                {"dtype", "float32"}});
  std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.embed_tokens.weight", {vocab, d}}, {"model.norm.weight", {d}}, {"lm_head.weight", {vocab, d}}};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    shapes[b + "input_layernorm.weight"] = {d};
    shapes[b + "post_attention_layernorm.weight"] = {d};
    for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"}) shapes[b + "self_attn." + p + ".weight"] = {d, d};
    shapes[b + "mlp.gate_proj.weight"] = {ffn, d};
    shapes[b + "mlp.up_proj.weight"] = {ffn, d};
    shapes[b + "mlp.down_proj.weight"] = {d, ffn};
  }
  uint32_t seed = 1;
  for (const auto& [name, shape] : shapes) {
    gqa::TensorToWrite t;
    t.name = name;
    t.dtype = DType::F32;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    t.nbytes = uint64_t(n) * 4;
    t.fill = [n, s = seed++](uint8_t* dst) {
      std::mt19937 rng(s);
      std::uniform_real_distribution<float> u(-0.05f, 0.05f);
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& x : v) x = u(rng);
      std::memcpy(dst, v.data(), v.size() * 4);
    };
    w.add(std::move(t));
  }
  w.commit();
}

// Names in `dir` that start with `prefix` (the output folder and its temp folders).
std::vector<std::string> entries_starting(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
  return out;
}

// A folder equal to `ref`: same config.json, same tensors byte for byte (so it opens, and is whole).
::testing::AssertionResult SameModelFolder(const std::string& dir, const std::string& ref) {
  try {
    Checkpoint a(dir), b(ref);
    if (read_text(dir + "/config.json") != read_text(ref + "/config.json"))
      return ::testing::AssertionFailure() << dir << ": config.json differs from " << ref;
    if (a.names() != b.names()) return ::testing::AssertionFailure() << dir << ": tensor names differ from " << ref;
    for (const auto& name : a.names()) {
      const auto &x = a.tensor(name), &y = b.tensor(name);
      if (x.nbytes != y.nbytes || std::memcmp(x.data, y.data, x.nbytes) != 0)
        return ::testing::AssertionFailure() << dir << ": tensor " << name << " differs";
    }
  } catch (const gqa::InputError& e) {
    return ::testing::AssertionFailure() << "not a whole model folder: " << e.what();
  }
  return ::testing::AssertionSuccess();
}

TEST(CrashSafety, ConvertKilledAtRandomPointsLeavesNothingOrAWholeFolder) {
  TempDir d("gqa-crash");
  write_llama(d.file("mha"));
  const std::vector<std::string> convert = {"convert", d.file("mha"), "", "--kv-heads", "2", "--strategy", "mean"};
  auto args_for = [&](const std::string& out, const std::string& strategy, bool force) {
    std::vector<std::string> a = convert;
    a[2] = out;
    a[6] = strategy;
    if (force) a.push_back("--force");
    return a;
  };
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Succeeded(run_gqa(args_for(d.file("ref-mean"), "mean", false))));
  const long full_ms =
      long(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  ASSERT_TRUE(Succeeded(run_gqa(args_for(d.file("ref-first"), "first", false))));

  int killed_while_writing = 0, killed = 0;
  const std::string out = d.file("out");
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    std::mt19937 rng(seed);
    // Seeds 1-4 kill at a random time of the whole run; seeds 5-8 at a random time after the temp
    // folder appears (within the write, which is a small part of the run).
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    gqa::test::RunOptions kill;
    long kill_ms = 0;
    if (seed <= 4) {
      kill_ms = long((0.2 + 0.8 * u) * double(full_ms));
      kill.kill_after_ms = kill_ms;
    } else {
      kill_ms = long(u * 0.25 * double(full_ms));
      auto seen = std::make_shared<std::chrono::steady_clock::time_point>();
      kill.kill_when = [&d, seen, kill_ms] {
        if (*seen == std::chrono::steady_clock::time_point()) {
          if (entries_starting(d.path, "out.tmp-").empty()) return false;
          *seen = std::chrono::steady_clock::now();
        }
        return std::chrono::steady_clock::now() - *seen >= std::chrono::milliseconds(kill_ms);
      };
    }
    // Even seeds replace an existing output (--force over a `first` conversion): then the folder
    // must hold the old model or the new one, never neither and never a mix.
    const bool replacing = seed % 2 == 0;
    fs::remove_all(out);
    if (replacing) {
      ASSERT_TRUE(Succeeded(run_gqa(args_for(out, "first", false))));
    }
    Result r = run_gqa(args_for(out, "mean", replacing), kill);
    if (!r.killed_on_purpose) {
      ASSERT_TRUE(Succeeded(r)) << "seed " << seed;
    } else {
      ++killed;
      if (!entries_starting(d.path, "out.tmp-").empty()) ++killed_while_writing;
      std::cout << "seed " << seed << ": killed " << kill_ms << " ms "
                << (seed <= 4 ? "after start" : "after the temp folder appeared")
                << (fs::exists(out) ? "; output present" : "; no output") << "\n";
    }
    if (fs::exists(out)) {
      const bool is_new = SameModelFolder(out, d.file("ref-mean"));
      EXPECT_TRUE(is_new || (replacing && SameModelFolder(out, d.file("ref-first"))))
          << "seed " << seed << " killed after " << kill_ms
          << " ms: " << SameModelFolder(out, d.file("ref-mean")).message();
    } else {
      EXPECT_FALSE(replacing) << "seed " << seed << ": the old output vanished";
    }
    // The next run over the same output clears the killed run's temp folder and finishes.
    ASSERT_TRUE(Succeeded(run_gqa(args_for(out, "mean", true)))) << "seed " << seed;
    EXPECT_TRUE(SameModelFolder(out, d.file("ref-mean"))) << "seed " << seed;
    EXPECT_EQ(entries_starting(d.path, "out"), std::vector<std::string>{"out"}) << "seed " << seed;
  }
  std::cout << "convert takes " << full_ms << " ms; " << killed << " of 8 runs killed, " << killed_while_writing
            << " of them while their temp folder existed\n";
  EXPECT_GE(killed, 4) << "the kill times missed the runs";
  EXPECT_GE(killed_while_writing, 3) << "too few kills landed while the output was being written";
}

// Whether this machine lets us mount a small tmpfs: through an unprivileged user + mount namespace
// (`unshare -rm`), or directly as root. Returns the argv prefix that runs `sh -c SCRIPT` where the
// script may mount, or an empty vector and why not.
std::vector<std::string> tmpfs_shell(std::string* why) {
  for (const std::vector<std::string>& prefix : {std::vector<std::string>{"/usr/bin/unshare", "-rm", "/bin/sh", "-c"},
                                                 std::vector<std::string>{"/bin/sh", "-c"}}) {
    std::vector<std::string> probe = prefix;
    probe.push_back(
        "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\"; r=$?; rmdir \"$d\"; exit $r");
    const Result r = run_program(probe);
    if (r.exit_code == 0) return prefix;
    *why += r.err;
  }
  return {};
}

// Runs `body` (a shell script) with $M a fresh tmpfs of `bytes` mounted, then unmounted.
Result with_small_tmpfs(const std::vector<std::string>& shell, const std::string& mount_point, uint64_t bytes,
                        const std::string& body) {
  std::vector<std::string> argv = shell;
  argv.push_back("M='" + mount_point + "'; mount -t tmpfs -o size=" + std::to_string(bytes) +
                 " tmpfs \"$M\" || exit 99\n" + body + "\nr=$?; umount \"$M\"; exit $r");
  return run_program(argv, {120, -1, nullptr, nullptr});
}

// Split "...\nrc=N\n" written by the scripts below from the gqa output before it.
int script_rc(const Result& r) {
  const auto at = r.out.rfind("rc=");
  return at == std::string::npos ? -1 : std::stoi(r.out.substr(at + 3));
}

TEST(DiskFull, ConvertOnAFullTmpfsFailsCleanly) {
  std::string why;
  const auto shell = tmpfs_shell(&why);
  if (shell.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (no user namespaces, not root): " << why;
  TempDir d("gqa-diskfull");
  write_llama(d.file("mha"));
  fs::create_directory(d.file("mnt"));
  // 8 MB for a 46 MB output: the safetensors write runs out of space.
  const Result r = with_small_tmpfs(shell, d.file("mnt"), 8u << 20,
                                    std::string("'") + GQA_BIN + "' convert '" + d.file("mha") +
                                        "' \"$M/out\" --kv-heads 2 2>\"$M/../err.txt\"; echo rc=$?; ls -A \"$M\"");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(script_rc(r), 2) << r.describe();
  const std::string listing = r.out.substr(r.out.rfind("rc=") + 5);
  EXPECT_EQ(listing, "") << "left on the full file system: " << listing;
  Result as_cli;
  as_cli.exit_code = script_rc(r);
  as_cli.err = read_text(d.file("err.txt"));
  EXPECT_TRUE(UserError(as_cli, {"model.safetensors", "No space left on device"}));
}

// Without mount rights the same failure comes from a file-size limit (RLIMIT_FSIZE, EFBIG).
TEST(DiskFull, ConvertPastAFileSizeLimitFailsCleanly) {
  TempDir d("gqa-fsize");
  write_llama(d.file("mha"));
  const Result r = run_program({"/bin/sh", "-c",
                                "ulimit -f 8192; trap '' XFSZ; exec '" + std::string(GQA_BIN) + "' convert '" +
                                    d.file("mha") + "' '" + d.file("out") + "' --kv-heads 2"});
  EXPECT_TRUE(UserError(r, {"model.safetensors", "File too large"}));
  EXPECT_TRUE(entries_starting(d.path, "out").empty()) << "partial output left behind";
}

// A tiny tokenised corpus (uint16 ids < 384) for uptraining the oracle's llama_mha.
void write_tokens(const std::string& path, size_t n) {
  std::mt19937 rng(5);
  std::string bytes;
  for (size_t i = 0; i < n; ++i) {
    const uint16_t id = uint16_t(rng() % 384);
    bytes.push_back(char(id & 0xff));
    bytes.push_back(char(id >> 8));
  }
  write_text(path, bytes);
}

uint64_t folder_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

std::map<int64_t, double> train_losses(const std::string& run) {
  std::map<int64_t, double> out;
  std::istringstream in(read_text(run + "/train_log.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j.value("kind", "") == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

TEST(DiskFull, UptrainKeepsTheLastGoodCheckpointAndResumes) {
  const char* oracle = std::getenv("GQA_ORACLE_DIR");
  const std::string src = oracle ? std::string(oracle) + "/llama_mha" : "";
  if (src.empty() || !fs::is_directory(src)) GTEST_SKIP() << "GQA_ORACLE_DIR/llama_mha missing (fixture parity_oracle)";
  std::string why;
  const auto shell = tmpfs_shell(&why);
  if (shell.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (no user namespaces, not root): " << why;
  TempDir d("gqa-diskfull-train");
  write_tokens(d.file("train.bin"), 20000);
  const std::string common = " --data '" + d.file("train.bin") +
                             "' --seq-len 32 --batch-size 4 --steps 8 --save-every 2 --lr 2e-3 --threads 1 --quiet";
  const std::string uptrain = "'" + std::string(GQA_BIN) + "' uptrain '" + src + "' ";
  // On a roomy disk first: the loss curve, and how big one step checkpoint is.
  Result straight = run_program({"/bin/sh", "-c", uptrain + "'" + d.file("straight") + "'" + common});
  ASSERT_TRUE(Succeeded(straight));
  const uint64_t checkpoint = folder_bytes(d.file("straight/checkpoints/step-00000008"));
  const uint64_t logs =
      fs::file_size(d.file("straight/train_log.jsonl")) + fs::file_size(d.file("straight/train_log.h5"));
  // Room for one checkpoint and a half (and the logs): the second checkpoint cannot be written.
  fs::create_directory(d.file("mnt"));
  const Result r = with_small_tmpfs(shell, d.file("mnt"), checkpoint * 3 / 2 + logs * 4 + (64u << 10),
                                    uptrain + "\"$M/run\"" + common + " 2>'" + d.file("err.txt") +
                                        "'; echo rc=$?; cp -a \"$M/run\" '" + d.file("copy") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  Result as_cli;
  as_cli.exit_code = script_rc(r);
  as_cli.err = read_text(d.file("err.txt"));
  EXPECT_TRUE(UserError(as_cli, {"No space left on device"}));
  // The first checkpoint survived whole; nothing else (no temp folder, no final model) is there.
  EXPECT_EQ(entries_starting(d.file("copy/checkpoints"), ""), std::vector<std::string>{"step-00000002"});
  EXPECT_FALSE(fs::exists(d.file("copy/model")));
  EXPECT_NO_THROW(Checkpoint(d.file("copy/checkpoints/step-00000002")));
  EXPECT_NO_THROW(json::parse(read_text(d.file("copy/checkpoints/step-00000002/trainer_state.json"))));
  // With room again, --resume finishes on the uninterrupted run's loss curve.
  ASSERT_TRUE(Succeeded(run_program({"/bin/sh", "-c", uptrain + "'" + d.file("copy") + "'" + common + " --resume"})));
  const auto a = train_losses(d.file("straight")), b = train_losses(d.file("copy"));
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (const auto& [step, loss] : a) EXPECT_EQ(b.at(step), loss) << "step " << step;
}

// Whether the run's train_log.jsonl has recorded step `step`.
bool logged_step(const std::string& log, int64_t step) {
  return read_text(log).find("\"step\":" + std::to_string(step) + ",") != std::string::npos;
}

// The step number after `prefix` in `text`, or -1.
int64_t step_after(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : std::stoll(text.substr(at + prefix.size()));
}

TEST(StopSignal, CompareStopsLikeTrainAndTheRerunResumes) {
  TempDir d("gqa-compare-stop");
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The quick brown fox jumps over the lazy dog, and the dog sleeps on in the sun. ";
  write_text(d.file("train.txt"), text);
  write_text(d.file("test.txt"), text.substr(0, 4000));
  write_text(d.file("shape.json"), R"({"family": "gpt2", "layers": 2, "d_model": 64, "heads": 4, "ffn_dim": 128,
                                       "vocab_size": 4096, "max_positions": 128})");
  gqa::test::RunOptions two_minutes;
  two_minutes.timeout_seconds = 120;
  const Result trained =
      run_gqa({"train", d.file("mha"), "--config", d.file("shape.json"), "--tokenizer",
               std::string(GQA_SOURCE_DIR) + "/examples/assets/bpe4096", "--data", d.file("train.txt"), "--steps", "1",
               "--seq-len", "32", "--batch-size", "2", "--threads", "1", "--quiet"},
              two_minutes);
  ASSERT_TRUE(Succeeded(trained)) << trained.describe();

  // Far more steps than the test waits for: the signal always lands mid-uptraining.
  const std::string out = d.file("cmp"), cell = out + "/cells/mean-kv2";
  const std::string log = cell + "/uptrain/train_log.jsonl";
  const std::vector<std::string> compare = {"compare",
                                            d.file("mha/model"),
                                            out,
                                            "--strategies",
                                            "mean",
                                            "--kv-heads",
                                            "2",
                                            "--data",
                                            d.file("train.txt"),
                                            "--steps",
                                            "100000",
                                            "--seq-len",
                                            "32",
                                            "--batch-size",
                                            "2",
                                            "--eval-data",
                                            d.file("test.txt"),
                                            "--eval-tokens",
                                            "256",
                                            "--no-speed",
                                            "--threads",
                                            "1",
                                            "--quiet"};
  gqa::test::RunOptions stop;
  stop.timeout_seconds = 240;
  stop.terminate_when = [&] { return logged_step(log, 3); };
  const Result first = run_gqa(compare, stop);
  ASSERT_TRUE(first.terminated) << first.describe();
  EXPECT_EQ(first.exit_code, 128 + SIGTERM) << first.describe();
  const int64_t stopped = step_after(first.out, "compare: stopped by SIGTERM while uptraining mean-kv2, after step ");
  ASSERT_GE(stopped, 3) << first.describe();
  EXPECT_NE(first.out.find("continue with: gqa compare "), std::string::npos) << first.describe();
  const std::string checkpoint = cell + "/uptrain/checkpoints/step-" +
                                 std::string(8 - std::to_string(stopped).size(), '0') + std::to_string(stopped);
  EXPECT_TRUE(fs::is_directory(checkpoint)) << checkpoint;
  EXPECT_TRUE(fs::exists(out + "/cells/mha.json"));
  EXPECT_FALSE(fs::exists(out + "/cells/mean-kv2.json")) << "the stopped cell was saved";
  EXPECT_FALSE(fs::exists(cell + "/uptrain/model")) << "the stopped uptraining wrote a model";
  EXPECT_FALSE(fs::exists(out + "/report.md"));

  // The same command again: the baseline is reused and the uptraining goes on from the checkpoint.
  stop.terminate_when = [&] { return logged_step(log, stopped + 2); };
  const Result second = run_gqa(compare, stop);
  EXPECT_EQ(second.exit_code, 128 + SIGTERM) << second.describe();
  EXPECT_NE(second.out.find("mha: done earlier, reused"), std::string::npos) << second.describe();
  const int64_t again = step_after(second.out, "while uptraining mean-kv2, after step ");
  EXPECT_GT(again, stopped) << second.describe();
  std::vector<std::string> checkpoints = entries_starting(cell + "/uptrain/checkpoints", "step-");
  std::sort(checkpoints.begin(), checkpoints.end());
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_EQ(cell + "/uptrain/checkpoints/" + checkpoints[0], checkpoint);
}

}  // namespace
