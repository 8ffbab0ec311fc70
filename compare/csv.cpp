#include "compare/csv.h"

#include <cmath>
#include <set>

namespace gqa::report {

std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return nlohmann::json(v).dump();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string records_csv(const std::vector<nlohmann::json>& records) {
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (const nlohmann::json& r : records)
    for (auto it = r.begin(); it != r.end(); ++it)
      if (seen.insert(it.key()).second) keys.push_back(it.key());
  std::string csv;
  for (size_t i = 0; i < keys.size(); ++i) csv += (i ? "," : "") + csv_field(keys[i]);
  csv += "\n";
  for (const nlohmann::json& r : records) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i) csv += ",";
      const auto it = r.find(keys[i]);
      if (it == r.end()) continue;
      if (it->is_string())
        csv += csv_field(it->get<std::string>());
      else if (it->is_number_float())
        csv += csv_number(it->get<double>());
      else
        csv += csv_field(it->dump());
    }
    csv += "\n";
  }
  return csv;
}

}  // namespace gqa::report
