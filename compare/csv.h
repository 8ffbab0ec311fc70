// CSV text (RFC 4180) for results.csv and `gqa eval --csv`. Torch-free.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gqa::report {

// A CSV field, quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);
// Shortest text that reads back as the same double (nlohmann's), or nan/inf/-inf.
std::string csv_number(double v);
// CSV of flat JSON records (gqa eval --csv): a column per key in order of first appearance, a row
// per record; strings as they are, numbers as in results.csv, nested values as their JSON text,
// a key a record lacks as an empty field.
std::string records_csv(const std::vector<nlohmann::json>& records);

}  // namespace gqa::report
