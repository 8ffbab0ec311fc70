// What the report shows, decided once for all its files: the cells in report order, the
// baseline, the strategies and KV-head counts, the batch the chart's speed is read at, and what
// is missing or non-finite (the warnings).
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compare/cell.h"
#include "compare/report.h"

namespace gqa::report {

// The strategy of MLA cells (CellResult::strategy).
inline constexpr const char* kMlaStrategy = "mla";
bool is_mla(const CellResult& cell);  // an MLA cell (never the baseline)
// "MLA rank 72 + rotary 24" (no rotary part when latent_rope_dims is 0 or missing; "MLA" without a
// latent_rank); any other cell: its strategy.
std::string strategy_label(const CellResult& cell);
// A strategy as the legends name it: "MLA" for MLA, others as they are.
std::string strategy_label(const std::string& strategy);
// "MHA baseline", "mean, 2 KV heads", "MLA rank 72 + rotary 24 (KV bytes of 2 KV heads)".
std::string cell_name(const CellResult& cell);
std::string join(const std::vector<std::string>& parts, const std::string& separator);
// The cell's decode time at `batch`, when it measured one.
std::optional<double> decode_ms(const CellResult& cell, int64_t batch);
// The spread of the cell's timing at `batch`: the larger of its own repeats' and those of the MHA
// run timed beside it; nullopt when neither was recorded.
std::optional<double> timing_spread(const CellResult& cell, int64_t batch);
bool is_noisy(const CellResult& cell, int64_t batch);

struct Plan {
  std::vector<const CellResult*> ordered;  // baseline, then strategies by first appearance, KV heads descending
  const CellResult* baseline = nullptr;
  std::vector<std::string> strategies;  // non-baseline, by first appearance
  std::vector<int64_t> kv_counts;       // non-baseline, descending
  std::vector<int64_t> batches;         // every batch any cell measured, ascending
  int64_t speed_batch = 0;              // the chart's batch; 0 when no cell measured decode speed
  bool x_is_speedup = false;            // the baseline measured speed_batch, so speedups exist
  bool kv_vs_mha = false;               // the baseline has positive KV bytes, so KV fractions exist
  bool has_mla = false;                 // some cell is MLA
  std::optional<double> noisy_spread;   // ReportOptions::noisy_spread: the threshold, for the text

  size_t strategy_index(const std::string& strategy) const {
    return size_t(std::find(strategies.begin(), strategies.end(), strategy) - strategies.begin());
  }
  size_t kv_index(int64_t kv_heads) const {
    return size_t(std::find(kv_counts.begin(), kv_counts.end(), kv_heads) - kv_counts.begin());
  }
};

// Throws InputError for contradictory input (two results for one cell, two baselines, a
// speed_batch no cell measured).
Plan make_plan(const std::vector<CellResult>& cells, const ReportOptions& options);

// MHA's decode time over the cell's, at the same batch; only from finite positive times. MHA's
// time is the one measured interleaved with the cell when it has one, else the baseline cell's.
std::optional<double> speedup(const Plan& plan, const CellResult& cell, int64_t batch);

// Whether the cell's speedup at `batch` rests on a noisy timing: its own, or, without a paired
// MHA time, the baseline cell's. The baseline's own speedup is 1 by definition, never noisy.
bool speedup_is_noisy(const Plan& plan, const CellResult& cell, int64_t batch);

struct PlotPoint {
  const CellResult* cell;
  double x, y;
};

// The report's title: options.title, except that the default one ("MHA → GQA ...") says
// "MHA → GQA / MLA ..." when some cell is MLA.
std::string report_title(const Plan& plan, const ReportOptions& options);

// The quality charts' points: perplexity after uptraining (y) against an x per cell, in report
// order; `skipped` (optional) collects, per reason, the cells left out.
using Skipped = std::map<std::string, std::vector<std::string>>;
// x: decode speedup vs MHA at plan.speed_batch (x_is_speedup), else decode time per token.
std::vector<PlotPoint> quality_points(const Plan& plan, Skipped* skipped);
// x: KV bytes per token over the baseline's (kv_vs_mha), else KV bytes per token.
std::vector<PlotPoint> kv_bytes_points(const Plan& plan, Skipped* skipped);

// Non-finite values, cells missing from the quality charts and why, noisy timings, a missing
// baseline.
std::vector<std::string> warnings_for(const Plan& plan);

}  // namespace gqa::report
