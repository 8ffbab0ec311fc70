// One line of a JSONL file (training data, summarization pairs, minimal pairs): every reader of
// JSONL takes its records through these, so all refuse the same things the same way.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace gqa {

// Nothing for a blank line (spaces, tabs, CR); else a JSON object nested at most 512 levels;
// InputError naming `where` (file:line) otherwise.
std::optional<nlohmann::json> parse_jsonl_line(const std::string& line, const std::string& where);

// record[field] as a string; InputError naming `where` and the field when missing or not a string.
const std::string& jsonl_string_field(const nlohmann::json& record, const std::string& field, const std::string& where);

}  // namespace gqa
