// The report's SVG charts.
#pragma once
#include <string>

#include "compare/plan.h"
#include "compare/report.h"

namespace gqa::report {

// Perplexity after uptraining against decode speedup vs MHA (or decode time without a baseline).
std::string render_quality_vs_speed(const Plan& plan, const ReportOptions& options);
// Perplexity after uptraining against KV cache bytes per token relative to MHA (or in bytes
// without a baseline's bytes): every target (GQA strategies, MLA) on one chart.
std::string render_quality_vs_kv_bytes(const Plan& plan, const ReportOptions& options);
// Training and validation loss by step, one panel each, on shared axes.
std::string render_loss_curves(const Plan& plan, const ReportOptions& options);

}  // namespace gqa::report
