// report.md: the quality and speed tables, links to the charts, and the warnings.
#pragma once
#include <string>
#include <vector>

#include "compare/plan.h"
#include "compare/report.h"

namespace gqa::report {

std::string render_markdown(const Plan& plan, const ReportOptions& options, const std::vector<std::string>& warnings);

}  // namespace gqa::report
