// The report of `gqa compare`: one result per cell (a conversion strategy at a KV-head count, plus
// the MHA baseline), stored as one JSON file per finished cell so a resumed comparison reloads
// them, and written out together as results.csv, results.json, report.md and two SVG charts
// (quality vs decode speed; uptraining loss curves). Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gqa::report {

// Quality of one model on the held-out text. Every metric is optional: a comparison measures
// what its data allows (ROUGE needs a summarization set, minimal pairs their own file).
struct Quality {
  std::optional<double> perplexity;
  std::optional<double> bits_per_byte;
  std::optional<double> rouge1, rouge2, rouge_l;  // F-measures in [0, 1]
  std::optional<double> minimal_pair_accuracy;    // fraction in [0, 1]

  bool operator==(const Quality& other) const;
  bool operator!=(const Quality& other) const { return !(*this == other); }
};

struct LossPoint {
  int64_t step = 0;
  double loss = 0;
};

struct CellResult {
  std::string strategy;  // conversion strategy ("mean", "svd", ...); for the baseline, e.g. "mha"
  int64_t kv_heads = 0;  // the baseline's KV heads = its query heads
  bool is_baseline = false;
  Quality step0;                                  // right after conversion, before any uptraining
  Quality uptrained;                              // after uptraining (empty when the cell was not uptrained)
  // Batch size -> milliseconds per decoded token (one decode step; the caller picks the convention,
  // e.g. decode_bench's ms per step). Speedups are ratios at equal batch, so any one convention
  // used for every cell gives the same speedups.
  std::map<int64_t, double> decode_ms_per_token;
  std::optional<int64_t> kv_bytes_per_token;      // KV cache, all layers
  std::optional<int64_t> parameters;
  std::vector<LossPoint> train_loss, valid_loss;  // uptraining curves, by step
  std::optional<double> wall_seconds;             // time spent on the cell (convert + uptrain + eval)

  // Non-finite numbers compare equal to themselves (NaN == NaN), so a cell equals its reload.
  bool operator==(const CellResult& other) const;
  bool operator!=(const CellResult& other) const { return !(*this == other); }
};

// JSON form: missing values are omitted; NaN and ±inf are written as the strings "NaN",
// "Infinity", "-Infinity" (JSON has no such numbers) and read back exactly; decode times are an
// object keyed by batch size ({"1": 0.8, "512": 0.02}); curves are [[step, loss], ...].
void to_json(nlohmann::json& j, const CellResult& cell);
void to_json(nlohmann::json& j, const Quality& quality);
// Unknown keys are ignored (results.json adds derived fields to each cell). Throws InputError
// naming `source` and the field when a value has the wrong type or is out of range.
CellResult cell_from_json(const nlohmann::json& j, const std::string& source);
void from_json(const nlohmann::json& j, CellResult& cell);  // cell_from_json(j, "")

// One cell per file, for resuming a comparison: written atomically (temp file + rename), read
// back with InputError(path, field, problem) on any defect.
void save_cell(const CellResult& cell, const std::string& path);
CellResult load_cell(const std::string& path);

struct ReportOptions {
  std::string title = "MHA \u2192 GQA conversion comparison";
  std::string model_name;  // shown under the title when set
  // Batch size whose decode speed is the quality-vs-speed chart's x axis. Unset: the largest
  // batch the baseline measured (or, without a baseline, the largest any cell measured).
  std::optional<int64_t> speed_batch;
};

// Axis ticks at multiples of 1, 2, 2.5 or 5 × 10^k: the step whose ticks, from the multiple at or
// below lo to the one at or above hi, come closest to target_count (ties: the smaller step).
// lo/hi of the result are those outer ticks; `decimals` is the fewest digits after the point that
// print every value exactly. An empty range (lo == hi) is widened around its value; lo > hi is
// swapped. Throws std::invalid_argument for non-finite input or target_count < 2.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
  int decimals = 0;
  std::string label(double value) const;  // value with `decimals` digits, never "-0"
};
Ticks nice_ticks(double lo, double hi, int target_count = 5);

// Writes out_dir/{results.csv, results.json, report.md, quality_vs_speed.svg, loss_curves.svg},
// each through a temp file renamed into place; creates out_dir when missing. Returns the
// warnings (also listed in report.md). Throws InputError for contradictory input (two results for
// one cell, two baselines, a speed_batch no cell measured) or when a file cannot be written.
std::vector<std::string> write_report(const std::vector<CellResult>& cells, const std::string& out_dir,
                                      const ReportOptions& options = {});

// The pieces of write_report (each validates the cells as write_report does).
// Warnings: non-finite values (shown as NaN/inf in the tables, left out of the charts), cells
// missing from the quality-vs-speed chart and why, a missing baseline.
std::vector<std::string> report_warnings(const std::vector<CellResult>& cells,
                                         const ReportOptions& options = {});
// One row per cell (baseline first, then strategies in order of first appearance, KV heads
// descending); missing values are empty fields, non-finite ones "nan", "inf", "-inf".
std::string results_csv(const std::vector<CellResult>& cells);
// CSV of flat JSON records (gqa eval --csv): a column per key in order of first appearance, a row
// per record; strings as they are, numbers as in results.csv, nested values as their JSON text,
// a key a record lacks as an empty field.
std::string records_csv(const std::vector<nlohmann::json>& records);
// {"title", "model", "speed_batch", "warnings", "cells": [cell JSON + "speedup_vs_mha"]}.
nlohmann::json results_json(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// Each plotted cell is one element with class="point" (the baseline: class="point baseline").
std::string quality_vs_speed_svg(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// Each drawn curve segment is one element with class="curve".
std::string loss_curves_svg(const std::vector<CellResult>& cells, const ReportOptions& options = {});
std::string report_markdown(const std::vector<CellResult>& cells, const ReportOptions& options = {});

// File names inside out_dir.
inline constexpr const char* kQualityVsSpeedSvg = "quality_vs_speed.svg";
inline constexpr const char* kLossCurvesSvg = "loss_curves.svg";

}  // namespace gqa::report
