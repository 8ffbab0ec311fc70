// gqa compare: convert -> uptrain -> eval for every strategy x KV-head count, plus the MHA
// baseline measured in the same run, into one report folder. Each finished cell is saved as
// OUT/cells/<strategy>-kv<N>.json, so re-running an interrupted comparison skips finished cells
// (and an interrupted uptraining resumes from its last checkpoint).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "eval/decode_bench.h"
#include "eval/quality.h"
#include "uptrain/trainer.h"

namespace gqa {

struct CompareOptions {
  std::string mha_dir, out_dir;
  std::vector<std::string> strategies{"mean", "first", "weighted", "random-weighted", "similarity", "svd"};
  std::vector<int> kv_heads{8, 4, 2, 1};  // counts that do not divide the heads, or equal them, are skipped
  TrainOptions train;                     // data, budget (fraction or steps), optimizer; model/out set per cell
  bool uptrain = true;
  // Held-out text (the first file's perplexity is reported, and it calibrates by default),
  // summaries and their settings: measured as gqa eval measures them, with its defaults.
  QualityOptions quality;
  std::vector<std::string> pairs;  // BLiMP-format minimal pairs
  std::string calib_text;          // svd / similarity calibration text ("" = first quality.text file)
  int64_t calib_tokens = 16384;
  DecodeBenchOptions speed;
  bool measure_speed = true;
  std::string dtype = "auto";  // runtime dtype of every measurement and of calibration
};

// Runs the grid and writes OUT/report.md, results.csv, results.json and the charts; returns the
// report path. Progress (cell i of n, stage, ETA) goes to `log`.
std::string run_compare(const CompareOptions& opts, std::ostream& log);

}  // namespace gqa
