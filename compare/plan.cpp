#include "compare/plan.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "compare/metrics.h"
#include "core/error.h"
#include "core/format.h"

namespace gqa::report {
namespace {

// The chart's quality: perplexity after uptraining. The baseline is never converted, so when it
// was not uptrained its step-0 perplexity is its final quality.
std::optional<double> plotted_perplexity(const CellResult& cell) {
  if (cell.uptrained.perplexity || !cell.is_baseline) return cell.uptrained.perplexity;
  return cell.step0.perplexity;
}

std::vector<std::string> non_finite_fields(const CellResult& cell) {
  std::vector<std::string> fields;
  for (const Phase& phase : phases())
    for (const Metric& metric : metrics()) {
      const std::optional<double>& v = (cell.*phase.member).*metric.member;
      if (v && !std::isfinite(*v))
        fields.push_back(std::string(metric.label) + " (" + phase.label + ") " + non_finite_text(*v));
    }
  for (const auto& [batch, ms] : cell.decode_ms_per_token)
    if (!std::isfinite(ms))
      fields.push_back("decode time at batch " + std::to_string(batch) + " " + non_finite_text(ms));
  if (cell.wall_seconds && !std::isfinite(*cell.wall_seconds))
    fields.push_back("wall time " + non_finite_text(*cell.wall_seconds));
  const auto count_curve = [&](const std::vector<LossPoint>& curve, const char* what) {
    const auto bad =
        std::count_if(curve.begin(), curve.end(), [](const LossPoint& p) { return !std::isfinite(p.loss); });
    if (bad) fields.push_back(std::string(what) + " at " + std::to_string(bad) + " step" + (bad == 1 ? "" : "s"));
  };
  count_curve(cell.train_loss, "training loss");
  count_curve(cell.valid_loss, "validation loss");
  return fields;
}

}  // namespace

bool is_mla(const CellResult& cell) { return !cell.is_baseline && cell.strategy == kMlaStrategy; }

std::string strategy_label(const CellResult& cell) {
  if (!is_mla(cell)) return cell.strategy;
  if (!cell.latent_rank) return "MLA";
  const bool rope = cell.latent_rope_dims && *cell.latent_rope_dims > 0;
  return "MLA rank " + std::to_string(*cell.latent_rank) +
         (rope ? " + rotary " + std::to_string(*cell.latent_rope_dims) : "");
}

std::string strategy_label(const std::string& strategy) { return strategy == kMlaStrategy ? "MLA" : strategy; }

std::string cell_name(const CellResult& cell) {
  if (cell.is_baseline) return "MHA baseline";
  const std::string heads = std::to_string(cell.kv_heads) + " KV head" + (cell.kv_heads == 1 ? "" : "s");
  if (is_mla(cell)) return strategy_label(cell) + " (KV bytes of " + heads + ")";
  return cell.strategy + ", " + heads;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? separator : "") + parts[i];
  return text;
}

std::optional<double> decode_ms(const CellResult& cell, int64_t batch) {
  const auto it = cell.decode_ms_per_token.find(batch);
  if (it == cell.decode_ms_per_token.end()) return std::nullopt;
  return it->second;
}

std::optional<double> timing_spread(const CellResult& cell, int64_t batch) {
  std::optional<double> spread;
  for (const auto* spreads : {&cell.decode_spread, &cell.paired_mha_spread})
    if (const auto it = spreads->find(batch); it != spreads->end())
      spread = spread ? std::max(*spread, it->second) : it->second;
  return spread;
}

bool is_noisy(const CellResult& cell, int64_t batch) { return cell.noisy_batches.count(batch) > 0; }

Plan make_plan(const std::vector<CellResult>& cells, const ReportOptions& options) {
  Plan plan;
  plan.noisy_spread = options.noisy_spread;
  std::set<std::pair<std::string, int64_t>> seen;
  std::set<int64_t> kv_counts, batches;
  for (const CellResult& cell : cells) {
    if (cell.is_baseline) {
      if (plan.baseline) throw InputError("", "cells", "two MHA baselines among the results (one is expected)");
      plan.baseline = &cell;
    } else {
      plan.has_mla = plan.has_mla || is_mla(cell);
      if (!seen.insert({cell.strategy, cell.kv_heads}).second)
        throw InputError("", "cells",
                         "two results for " + cell_name(cell) + " (one per strategy and KV-head count is expected)");
      if (std::find(plan.strategies.begin(), plan.strategies.end(), cell.strategy) == plan.strategies.end())
        plan.strategies.push_back(cell.strategy);
      kv_counts.insert(cell.kv_heads);
    }
    for (const auto& [batch, ms] : cell.decode_ms_per_token) batches.insert(batch);
  }
  plan.kv_counts.assign(kv_counts.rbegin(), kv_counts.rend());
  plan.batches.assign(batches.begin(), batches.end());

  if (plan.baseline) plan.ordered.push_back(plan.baseline);
  for (const std::string& strategy : plan.strategies)
    for (int64_t kv_heads : plan.kv_counts)
      for (const CellResult& cell : cells)
        if (!cell.is_baseline && cell.strategy == strategy && cell.kv_heads == kv_heads) plan.ordered.push_back(&cell);

  if (options.speed_batch) {
    if (!batches.count(*options.speed_batch)) {
      std::vector<std::string> measured;
      for (int64_t b : plan.batches) measured.push_back(std::to_string(b));
      throw InputError("", "speed_batch",
                       "no result has a decode time at batch " + std::to_string(*options.speed_batch) +
                           (measured.empty() ? " (none has any)" : " (measured: " + join(measured, ", ") + ")"));
    }
    plan.speed_batch = *options.speed_batch;
  } else if (plan.baseline && !plan.baseline->decode_ms_per_token.empty()) {
    plan.speed_batch = plan.baseline->decode_ms_per_token.rbegin()->first;  // GQA's gain grows with batch
  } else if (!plan.batches.empty()) {
    plan.speed_batch = plan.batches.back();
  }
  const std::optional<double> baseline_ms = plan.baseline ? decode_ms(*plan.baseline, plan.speed_batch) : std::nullopt;
  plan.x_is_speedup = baseline_ms && std::isfinite(*baseline_ms) && *baseline_ms > 0;
  plan.kv_vs_mha = plan.baseline && plan.baseline->kv_bytes_per_token && *plan.baseline->kv_bytes_per_token > 0;
  return plan;
}

std::optional<double> speedup(const Plan& plan, const CellResult& cell, int64_t batch) {
  if (!plan.baseline) return std::nullopt;
  const auto paired = cell.paired_mha_ms_per_token.find(batch);
  const std::optional<double> base =
      paired != cell.paired_mha_ms_per_token.end() ? paired->second : decode_ms(*plan.baseline, batch);
  const std::optional<double> own = decode_ms(cell, batch);
  if (!base || !own || !std::isfinite(*base) || !std::isfinite(*own) || *base <= 0 || *own <= 0) return std::nullopt;
  return *base / *own;
}

bool speedup_is_noisy(const Plan& plan, const CellResult& cell, int64_t batch) {
  if (cell.is_baseline) return false;
  const bool over_baseline_cell = !cell.paired_mha_ms_per_token.count(batch) && plan.baseline;
  return is_noisy(cell, batch) || (over_baseline_cell && is_noisy(*plan.baseline, batch));
}

std::string report_title(const Plan& plan, const ReportOptions& options) {
  if (!plan.has_mla || options.title != ReportOptions{}.title) return options.title;
  return "MHA \u2192 GQA / MLA conversion comparison";
}

namespace {

// One cell's x on a quality chart: its value, or why it has none (why_not), or neither: a
// non-finite value, which has a warning of its own (non_finite_fields).
struct ChartX {
  std::optional<double> value;
  std::string why_not;
};

std::vector<PlotPoint> chart_points(const Plan& plan, const std::function<ChartX(const CellResult&)>& x_of,
                                    Skipped* skipped) {
  std::vector<PlotPoint> points;
  for (const CellResult* cell : plan.ordered) {
    const std::optional<double> y = plotted_perplexity(*cell);
    const ChartX x = x_of(*cell);
    if ((y && !std::isfinite(*y)) || (!x.value && x.why_not.empty())) continue;
    const std::string why_not = y ? x.why_not : "no perplexity after uptraining";
    if (!why_not.empty()) {
      if (skipped) (*skipped)[why_not].push_back(cell_name(*cell));
      continue;
    }
    points.push_back({cell, *x.value, *y});
  }
  return points;
}

}  // namespace

std::vector<PlotPoint> quality_points(const Plan& plan, Skipped* skipped) {
  const std::string batch = std::to_string(plan.speed_batch);
  return chart_points(
      plan,
      [&](const CellResult& cell) -> ChartX {
        const std::optional<double> ms = decode_ms(cell, plan.speed_batch);
        if (ms && !std::isfinite(*ms)) return {};
        if (!ms)
          return {std::nullopt, plan.speed_batch ? "no decode time at batch " + batch : "no decode time measured"};
        if (*ms <= 0) return {std::nullopt, "decode time at batch " + batch + " is not positive"};
        if (!plan.x_is_speedup) return {*ms, ""};
        const std::optional<double> s = speedup(plan, cell, plan.speed_batch);
        if (!s) return {std::nullopt, "no usable MHA decode time paired with it at batch " + batch};
        return {*s, ""};
      },
      skipped);
}

std::vector<PlotPoint> kv_bytes_points(const Plan& plan, Skipped* skipped) {
  return chart_points(
      plan,
      [&](const CellResult& cell) -> ChartX {
        if (!cell.kv_bytes_per_token) return {std::nullopt, "no KV bytes per token"};
        const double bytes = double(*cell.kv_bytes_per_token);
        return {plan.kv_vs_mha ? bytes / double(*plan.baseline->kv_bytes_per_token) : bytes, ""};
      },
      skipped);
}

std::vector<std::string> warnings_for(const Plan& plan) {
  std::vector<std::string> warnings;
  if (!plan.baseline)
    warnings.push_back(
        "No MHA baseline among the results: no speedups; the quality-vs-speed chart's x axis is decode time per "
        "token, the quality-vs-KV-bytes chart's KV bytes per token.");
  else if (plan.speed_batch && !plan.x_is_speedup)
    warnings.push_back("The MHA baseline has no usable decode time at batch " + std::to_string(plan.speed_batch) +
                       ": the quality-vs-speed chart's x axis is decode time per token.");
  if (plan.baseline && !plan.kv_vs_mha)
    warnings.push_back(
        "The MHA baseline has no KV bytes per token: the quality-vs-KV-bytes chart's x axis is KV bytes per token.");
  for (const CellResult* cell : plan.ordered) {
    const std::vector<std::string> fields = non_finite_fields(*cell);
    if (!fields.empty())
      warnings.push_back(cell_name(*cell) + ": non-finite values (" + join(fields, "; ") +
                         ") are shown as such in the tables and left out of the charts.");
  }
  // Cells left out of both charts for the same reason are named once.
  Skipped speed_skipped, kv_skipped;
  quality_points(plan, &speed_skipped);
  kv_bytes_points(plan, &kv_skipped);
  for (const auto& [reason, names] : speed_skipped) {
    const auto same = kv_skipped.find(reason);
    const bool both = same != kv_skipped.end() && same->second == names;
    warnings.push_back(std::string("Not in the quality-vs-speed ") + (both ? "or quality-vs-KV-bytes " : "") +
                       "chart (" + reason + "): " + join(names, "; ") + ".");
    if (both) kv_skipped.erase(same);
  }
  for (const auto& [reason, names] : kv_skipped)
    warnings.push_back("Not in the quality-vs-KV-bytes chart (" + reason + "): " + join(names, "; ") + ".");
  for (const CellResult* cell : plan.ordered) {
    std::vector<std::string> noisy;
    for (int64_t batch : cell->noisy_batches) {
      const std::optional<double> spread = timing_spread(*cell, batch);
      noisy.push_back("batch " + std::to_string(batch) + (spread ? ", spread " + format_percent(*spread) : ""));
    }
    if (!noisy.empty())
      warnings.push_back(cell_name(*cell) + ": noisy decode timing (" + join(noisy, "; ") + ") after one re-measure" +
                         (plan.noisy_spread ? ", above the " + format_percent(*plan.noisy_spread) + " threshold" : "") +
                         ": its times and speedups there are unreliable (the machine was busy); measure again on a "
                         "quieter machine.");
  }
  return warnings;
}

}  // namespace gqa::report
