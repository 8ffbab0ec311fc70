// The report of `gqa compare`: the cells (compare/cell.h) written out together as results.csv,
// results.json, report.md and three SVG charts (quality vs decode speed; quality vs KV cache bytes;
// uptraining loss curves). Cells are GQA conversions and, when compared, MLA conversions at equal
// KV bytes (strategy "mla"). Torch-free.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compare/cell.h"

namespace gqa::report {

struct ReportOptions {
  // The default says "MHA → GQA / MLA conversion comparison" where a cell is MLA.
  std::string title = "MHA \u2192 GQA conversion comparison";
  std::string model_name;  // shown under the title when set
  // Batch size whose decode speed is the quality-vs-speed chart's x axis. Unset: the largest
  // batch the baseline measured (or, without a baseline, the largest any cell measured).
  std::optional<int64_t> speed_batch;
  // The spread above which the timings were flagged noisy (gqa compare --noisy-spread), named in
  // the report's explanation of the flag; unset: the flag is explained without the number.
  std::optional<double> noisy_spread;
};

// Writes out_dir/{quality_vs_speed.svg, quality_vs_kv_bytes.svg, loss_curves.svg, results.csv,
// results.json, report.md} (report.md last: it links the charts), each through a temp file
// renamed into place; creates out_dir when missing. Returns the warnings (also listed in
// report.md). Throws InputError for contradictory input (two results for one cell, two baselines,
// a speed_batch no cell measured) or when a file cannot be written.
std::vector<std::string> write_report(const std::vector<CellResult>& cells, const std::string& out_dir,
                                      const ReportOptions& options = {});

// The pieces of write_report (each validates the cells as write_report does).
// Warnings: non-finite values (shown as NaN/inf in the tables, left out of the charts), cells
// missing from the quality charts and why, noisy decode timings, a missing baseline.
std::vector<std::string> report_warnings(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// One row per cell (baseline first, then strategies in order of first appearance, KV heads
// descending); missing values are empty fields, non-finite ones "nan", "inf", "-inf". Per batch:
// decode time, speedup, spread, the paired MHA time and spread, and noisy (true/false); then KV
// bytes per token, latent_rank and latent_rope_dims (MLA), parameters, wall time, final losses.
std::string results_csv(const std::vector<CellResult>& cells);
// {"title", "model", "speed_batch", "warnings", "cells": [cell JSON + "speedup_vs_mha"]} (an MLA
// cell's JSON holds latent_rank and latent_rope_dims).
nlohmann::json results_json(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// Each plotted cell is one element with class="point" (the baseline: class="point baseline"; a
// cell whose timing at the chart's batch is noisy: class="point noisy", drawn hollow).
std::string quality_vs_speed_svg(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// Perplexity after uptraining against KV cache bytes per token as a fraction of the baseline's
// (in bytes without a baseline or its bytes), every target on one chart: a colour per strategy
// (MLA's too), a shape per KV-head count (an MLA cell: the count whose bytes it matches). Each
// plotted cell is one element with class="point" (the baseline: class="point baseline").
std::string quality_vs_kv_bytes_svg(const std::vector<CellResult>& cells, const ReportOptions& options = {});
// Each drawn curve segment is one element with class="curve".
std::string loss_curves_svg(const std::vector<CellResult>& cells, const ReportOptions& options = {});
std::string report_markdown(const std::vector<CellResult>& cells, const ReportOptions& options = {});

// File names inside out_dir.
inline constexpr const char* kQualityVsSpeedSvg = "quality_vs_speed.svg";
inline constexpr const char* kQualityVsKvBytesSvg = "quality_vs_kv_bytes.svg";
inline constexpr const char* kLossCurvesSvg = "loss_curves.svg";

}  // namespace gqa::report
