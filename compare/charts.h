// The report's two SVG charts.
#pragma once
#include <string>

#include "compare/plan.h"
#include "compare/report.h"

namespace gqa::report {

// Perplexity after uptraining against decode speedup vs MHA (or decode time without a baseline).
std::string render_quality_vs_speed(const Plan& plan, const ReportOptions& options);
// Training and validation loss by step, one panel each, on shared axes.
std::string render_loss_curves(const Plan& plan, const ReportOptions& options);

}  // namespace gqa::report
