// A nesting limit for the JSON files we read (config.json, tokenizer.json, index and state files).
// nlohmann::json parses without recursion but copies, compares and walks values recursively, so a
// small file of a million '[' would overflow the stack later; real files nest fewer than 20 levels.
#pragma once
#include <string>
#include <string_view>

#include "core/error.h"

namespace gqa {

constexpr int kMaxJsonDepth = 512;

// Throws InputError(path, field, ...) when arrays/objects in `text` nest deeper than
// kMaxJsonDepth. Brackets inside strings do not count; the text need not be valid JSON (the parser
// judges that).
inline void check_json_depth(std::string_view text, const std::string& path, const std::string& field = "") {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw InputError(path, field, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

}  // namespace gqa
