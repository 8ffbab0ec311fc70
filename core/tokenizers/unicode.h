// UTF-8 and byte-level helpers shared by the tokenizers (private to core/tokenizers).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gqa::tok {

// Decodes the code point starting at s[i]. Returns the number of bytes it takes (1..4); for an
// invalid or truncated sequence returns 1 and sets *cp to 0xFFFFFFFF, so callers always advance.
size_t utf8_next(std::string_view s, size_t i, uint32_t* cp);

void utf8_append(std::string& out, uint32_t cp);

// Rust's char::is_whitespace (Unicode White_Space), which HF tokenizers use for lstrip/rstrip
// and WhitespaceSplit.
bool is_unicode_whitespace(uint32_t cp);

// Unicode \w (Alphabetic, marks, decimal digits, connector punctuation, ZWJ/ZWNJ), which HF
// tokenizers use to decide whether a single_word added token stands alone.
bool is_word_char(uint32_t cp);

// String::from_utf8_lossy: every maximal invalid subsequence becomes U+FFFD (the Unicode
// "substitution of maximal subparts" rule, the same as Python's errors="replace").
std::string utf8_lossy(std::string_view bytes);

bool is_valid_utf8(std::string_view s);

// GPT-2's bytes_to_unicode(): byte b -> the UTF-8 of the printable character that stands for it.
const std::array<std::string, 256>& byte_to_unicode();
// Inverse for one code point: the byte it stands for, or -1 when it is not in the table.
int unicode_to_byte(uint32_t cp);

}  // namespace gqa::tok
