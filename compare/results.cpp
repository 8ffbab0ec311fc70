#include "compare/results.h"

#include <algorithm>

#include "compare/csv.h"
#include "compare/metrics.h"

namespace gqa::report {
using json = nlohmann::json;

std::string render_csv(const Plan& plan) {
  const auto field = csv_field;
  const auto optional_number = [](const std::optional<double>& v) { return v ? csv_number(*v) : std::string(); };
  std::vector<std::string> header = {"strategy", "kv_heads", "is_baseline"};
  for (const Metric& metric : metrics())
    for (const Phase& phase : phases()) header.push_back(std::string(metric.key) + "_" + phase.key);
  for (int64_t batch : plan.batches) header.push_back("decode_ms_per_token_b" + std::to_string(batch));
  for (int64_t batch : plan.batches) header.push_back("speedup_b" + std::to_string(batch));
  for (const char* stem : {"decode_spread_b", "paired_mha_ms_per_token_b", "paired_mha_spread_b", "noisy_b"})
    for (int64_t batch : plan.batches) header.push_back(stem + std::to_string(batch));
  for (const char* name : {"kv_bytes_per_token", "latent_rank", "latent_rope_dims", "parameters", "wall_seconds",
                           "final_train_loss", "final_valid_loss"})
    header.push_back(name);
  std::string csv = join(header, ",") + "\n";

  const auto final_loss = [](const std::vector<LossPoint>& curve) -> std::optional<double> {
    if (curve.empty()) return std::nullopt;
    return std::max_element(curve.begin(), curve.end(),
                            [](const LossPoint& a, const LossPoint& b) { return a.step < b.step; })
        ->loss;
  };
  for (const CellResult* cell : plan.ordered) {
    std::vector<std::string> row = {field(cell->strategy), std::to_string(cell->kv_heads),
                                    cell->is_baseline ? "true" : "false"};
    for (const Metric& metric : metrics())
      for (const Phase& phase : phases()) row.push_back(optional_number((cell->*phase.member).*metric.member));
    for (int64_t batch : plan.batches) row.push_back(optional_number(decode_ms(*cell, batch)));
    for (int64_t batch : plan.batches) row.push_back(optional_number(speedup(plan, *cell, batch)));
    for (const auto* values : {&cell->decode_spread, &cell->paired_mha_ms_per_token, &cell->paired_mha_spread})
      for (int64_t batch : plan.batches) {
        const auto it = values->find(batch);
        row.push_back(it == values->end() ? "" : csv_number(it->second));
      }
    // Noisy or not where the cell has a decode time; empty where it has none.
    for (int64_t batch : plan.batches)
      row.push_back(decode_ms(*cell, batch) ? (is_noisy(*cell, batch) ? "true" : "false") : "");
    for (const std::optional<int64_t>* count :
         {&cell->kv_bytes_per_token, &cell->latent_rank, &cell->latent_rope_dims, &cell->parameters})
      row.push_back(*count ? std::to_string(**count) : "");
    row.push_back(optional_number(cell->wall_seconds));
    row.push_back(optional_number(final_loss(cell->train_loss)));
    row.push_back(optional_number(final_loss(cell->valid_loss)));
    csv += join(row, ",") + "\n";
  }
  return csv;
}

json render_json(const Plan& plan, const ReportOptions& options, const std::vector<std::string>& warnings) {
  json cells = json::array();
  for (const CellResult* cell : plan.ordered) {
    json j = *cell;
    if (plan.baseline) {
      json speedups = json::object();
      for (const auto& [batch, ms] : cell->decode_ms_per_token)
        if (const std::optional<double> s = speedup(plan, *cell, batch)) speedups[std::to_string(batch)] = *s;
      j["speedup_vs_mha"] = speedups;
    }
    cells.push_back(j);
  }
  json result = {{"title", report_title(plan, options)}, {"cells", cells}, {"warnings", warnings}};
  if (!options.model_name.empty()) result["model"] = options.model_name;
  result["speed_batch"] = plan.speed_batch ? json(plan.speed_batch) : json(nullptr);
  return result;
}

}  // namespace gqa::report
