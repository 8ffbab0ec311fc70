// The text of numbers, byte sizes and durations: one set of formatters for everything the verbs
// print (tables, progress lines, reports, errors). Torch-free.
#pragma once
#include <cstdint>
#include <string>

namespace gqa {

// printf into a string, however long.
__attribute__((format(printf, 1, 2))) std::string string_printf(const char* format, ...);

// "NaN", "inf" or "-inf" for a non-finite value; "" for a finite one.
std::string non_finite_text(double v);
// `decimals` digits after the point: (2.5, 2) -> "2.50"; non-finite values as non_finite_text.
std::string format_fixed(double v, int decimals);
// About three significant digits without an exponent: 123, 12.3, 1.23, 0.123, 0.0123.
std::string format_significant(double v);
// A fraction as a percentage with one decimal: 0.25 -> "25.0%".
std::string format_percent(double fraction);

// 6738415616 -> "6,738,415,616".
std::string format_with_commas(int64_t n);
// Counts and rates, abbreviated: 999 -> "999", 12345 -> "12.3K", 1.26e6 -> "1.26M", 6738415616 -> "6.74B".
std::string format_count(double n);
// "512 B", "1.5 KiB", "12.6 GiB": binary units up to TiB, one decimal from KiB on.
std::string format_bytes(double bytes);

// A clock for elapsed or remaining time: "01:23", "1:02:03"; "--:--" when unknown (negative or
// not finite).
std::string format_clock(double seconds);
// A duration in words, for tables: "42s", "5m 03s", "1h 02m".
std::string format_duration(double seconds);

}  // namespace gqa
