// The quality metrics and the two moments they are measured at: one list drives the cell JSON
// keys, the CSV columns, the table columns and the warnings.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "compare/cell.h"

namespace gqa::report {

struct Metric {
  const char* key;    // JSON key, CSV column stem
  const char* label;  // table header
  std::optional<double> Quality::*member;
  std::string (*format)(double);  // table text
};
const std::vector<Metric>& metrics();

// The two moments a cell's quality is measured at.
struct Phase {
  const char* key;    // JSON key, CSV column suffix
  const char* label;  // table header suffix, warnings
  Quality CellResult::*member;
};
const std::vector<Phase>& phases();

// Perplexity as the tables and the chart's tooltips show it: two decimals.
std::string format_perplexity(double v);

}  // namespace gqa::report
