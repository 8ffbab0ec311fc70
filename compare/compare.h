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
#include "eval/interleaved_timing.h"
#include "eval/quality.h"
#include "uptrain/trainer.h"

namespace gqa {

struct CompareOptions {
  std::string mha_dir, out_dir;
  std::vector<std::string> strategies{"mean", "first", "weighted", "random-weighted", "similarity", "svd"};
  std::vector<int> kv_heads{8, 4, 2, 1};  // counts that do not divide the heads, or equal them, are skipped
  // gqa: a cell per strategy and KV-head count; mla: a latent-attention cell per KV-head count, at
  // the KV bytes of that many GQA heads (convert/converter.h latent_at_kv_heads).
  std::vector<std::string> targets{"gqa"};
  TrainOptions train;  // data, budget (fraction or steps), optimizer; model/out set per cell
  bool uptrain = true;
  // Held-out text (the first file's perplexity is reported, and it calibrates by default),
  // summaries and their settings: measured as gqa eval measures them, with its defaults.
  QualityOptions quality;
  std::vector<std::string> pairs;  // BLiMP-format minimal pairs
  std::string calib_text;          // svd / similarity calibration text ("" = first quality.text file)
  int64_t calib_tokens = 16384;
  // Decode speed: each converted model is timed in turns with the MHA model (loaded beside it for
  // that step), per batch the fastest of speed.repeats with its spread; a timing whose repeats
  // disagree by more than noisy_spread (max/min - 1) is measured once more, then flagged noisy.
  DecodeBenchOptions speed;
  double noisy_spread = kDefaultNoisySpread;
  bool measure_speed = true;
  std::string dtype = "auto";  // runtime dtype of every measurement and of calibration
};

struct CompareOutcome {
  std::string report;  // OUT/report.md; empty when the run was stopped
  // SIGTERM / SIGINT during a cell's uptraining (uptrain/stop_signals.h): the uptraining wrote a
  // checkpoint and the comparison stopped there, without saving the cell or writing the report,
  // so running it again resumes that uptraining. The caller exits with 128 + stopped_by.
  int stopped_by = 0;
  std::string stopped_cell;  // e.g. "mean-kv2"
  TrainSummary stopped_training;
};

// Runs the grid and writes OUT/report.md, results.csv, results.json and the charts. Progress
// (cell i of n, stage, ETA) goes to `log`.
CompareOutcome run_compare(const CompareOptions& opts, std::ostream& log);

}  // namespace gqa
