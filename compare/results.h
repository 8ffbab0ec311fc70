// results.csv and results.json: every cell's numbers, for other tools.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compare/plan.h"
#include "compare/report.h"

namespace gqa::report {

std::string render_csv(const Plan& plan);
nlohmann::json render_json(const Plan& plan, const ReportOptions& options, const std::vector<std::string>& warnings);

}  // namespace gqa::report
