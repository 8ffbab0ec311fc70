// Helpers of the training tests: token files, running the gqa binary, reading train logs and
// comparing saved weights.
#pragma once
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/files.h"
#include "core/safetensors.h"

namespace gqa {

// Token ids with structure a small model can learn: a few repeating phrases with noise.
inline void write_tokens(const std::string& path, int64_t n, uint64_t seed, int64_t vocab = 384) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> ids;
  std::vector<std::vector<uint16_t>> phrases(8);
  for (auto& p : phrases)
    for (int i = 0; i < 6; ++i) p.push_back(uint16_t(rng() % uint64_t(vocab)));
  while (int64_t(ids.size()) < n) {
    const auto& p = phrases[rng() % phrases.size()];
    ids.insert(ids.end(), p.begin(), p.end());
    ids.push_back(uint16_t(rng() % uint64_t(vocab)));
  }
  ids.resize(size_t(n));
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
}

struct RunResult {
  int code = -1;
  std::string output;
};

// Runs a shell command, capturing stdout+stderr.
inline RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline std::string gqa_cmd(const std::string& args) { return std::string(GQA_BIN) + " " + args; }

// Losses of train_log.jsonl records of kind "train", by step.
inline std::map<int64_t, double> train_losses(const std::string& out_dir) {
  std::map<int64_t, double> out;
  std::ifstream in(out_dir + "/train_log.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("kind", "") != "train") continue;
    out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

// Max |a - b| over the tensors two folders share, as float32; fails when a name is missing.
// The largest absolute difference between the tensors of two folders (or a folder and a file), by
// name, leaving out tensors whose names end in one of `skip_suffixes`; `worst_tensor`, when given,
// receives the name where it is.
inline double folder_diff(const std::string& a_dir, const std::string& b_file_or_dir,
                          const std::vector<std::string>& skip_suffixes, std::string* worst_tensor = nullptr) {
  Checkpoint a(a_dir);
  std::unique_ptr<Checkpoint> b_ckpt;
  std::unique_ptr<SafetensorsFile> b_file;
  if (files::is_directory(b_file_or_dir))
    b_ckpt = std::make_unique<Checkpoint>(b_file_or_dir);
  else
    b_file = std::make_unique<SafetensorsFile>(b_file_or_dir);
  double worst = 0;
  for (const std::string& name : a.names()) {
    const bool skipped = std::any_of(skip_suffixes.begin(), skip_suffixes.end(), [&](const std::string& s) {
      return !s.empty() && name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    });
    if (skipped) continue;
    const bool in_b = b_ckpt ? b_ckpt->has(name) : b_file->has(name);
    EXPECT_TRUE(in_b) << name;
    if (!in_b) continue;
    const TensorView& x = a.tensor(name);
    const TensorView& y = b_ckpt ? b_ckpt->tensor(name) : b_file->tensor(name);
    std::vector<float> xf(size_t(x.numel())), yf(size_t(y.numel()));
    EXPECT_EQ(x.numel(), y.numel()) << name;
    if (x.numel() != y.numel()) continue;
    to_float32(x.dtype, x.data, x.numel(), xf.data());
    to_float32(y.dtype, y.data, y.numel(), yf.data());
    for (size_t i = 0; i < xf.size(); ++i) {
      const double d = std::abs(xf[i] - yf[i]);
      if (d > worst && worst_tensor) *worst_tensor = name;
      worst = std::max(worst, d);
    }
  }
  return worst;
}
inline double folder_diff(const std::string& a_dir, const std::string& b_file_or_dir,
                          const std::string& skip_suffix = "") {
  return folder_diff(a_dir, b_file_or_dir, std::vector<std::string>{skip_suffix});
}

}  // namespace gqa
