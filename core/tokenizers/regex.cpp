#include "core/tokenizers/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "core/tokenizers/unicode.h"

namespace gqa::tok {
namespace {
pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }
}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  // UCP: \s, \w, \d and POSIX classes use Unicode properties, as Oniguruma does on UTF-8.
  // MATCH_INVALID_UTF: bytes that are not UTF-8 simply never match (the text may be any bytes).
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  // Oniguruma reads \uHHHH; PCRE2 only with ALT_BSUX (which also makes \x take exactly 2 digits,
  // so it is turned on only for patterns that use \u).
  for (size_t i = 0; i + 1 < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (pattern[i + 1] == 'u') options |= PCRE2_ALT_BSUX;
      ++i;
    }
  }
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw std::invalid_argument("regex does not compile at offset " + std::to_string(offset) + ": " +
                                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter works too
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>* out) const {
  pcre2_code* code = as_code(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (md == nullptr) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match(code, subject, s.size(), pos, 0, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // Very long runs can exhaust the small JIT stack; the interpreter keeps its own heap.
      rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_JIT, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw std::runtime_error(std::string("regex match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] > ov[0]) {
      out->emplace_back(ov[0], ov[1]);
      pos = ov[1];
    } else {
      // Empty match: step over one character so the loop always advances.
      if (ov[0] >= s.size()) break;
      uint32_t cp = 0;
      pos = ov[0] + utf8_next(s, ov[0], &cp);
    }
  }
  pcre2_match_data_free(md);
}

}  // namespace gqa::tok
