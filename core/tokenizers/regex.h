// A PCRE2 regex for pre-tokenizer patterns taken from tokenizer.json (Oniguruma syntax there;
// the patterns HF models ship use only features PCRE2 shares with it).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gqa::tok {

class Regex {
 public:
  // Throws std::invalid_argument with PCRE2's message when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping, non-empty matches, left to
  // right. Invalid UTF-8 in `s` never matches and never fails (PCRE2_MATCH_INVALID_UTF).
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace gqa::tok
