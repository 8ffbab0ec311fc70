#include "core/jsonl.h"

#include "core/error.h"
#include "core/json_depth.h"

namespace gqa {

using json = nlohmann::json;

std::optional<json> parse_jsonl_line(const std::string& line, const std::string& where) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return std::nullopt;
  check_json_depth(line, where);
  json value;
  try {
    value = json::parse(line);
  } catch (const json::parse_error& e) {
    // e.what() would say "line 1": the parser only sees this line.
    throw InputError(where, "", "not valid JSON (column " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {
    // Found by tests/fuzz/fuzz_jsonl_records: a number too large for a double (1E73709551615)
    // throws out_of_range, not parse_error, and ended the program.
    throw InputError(where, "", std::string("not valid JSON (") + e.what() + ")");
  }
  if (!value.is_object()) throw InputError(where, "", "expected a JSON object per line");
  return value;
}

const std::string& jsonl_string_field(const json& record, const std::string& field, const std::string& where) {
  const auto it = record.find(field);
  if (it == record.end()) throw InputError(where, field, "missing field");
  if (!it->is_string()) throw InputError(where, field, std::string("expected a string, found ") + it->type_name());
  return it->get_ref<const std::string&>();
}

}  // namespace gqa
