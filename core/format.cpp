#include "core/format.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace gqa {

std::string string_printf(const char* format, ...) {
  va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text(size_t(std::max(length, 0)), '\0');
  std::vsnprintf(text.data(), text.size() + 1, format, again);  // C++17: data() is writable
  va_end(again);
  return text;
}

std::string non_finite_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return "";
}

std::string format_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return non_finite_text(v);
  return string_printf("%.*f", decimals, v);
}

std::string format_significant(double v) {
  if (!std::isfinite(v)) return non_finite_text(v);
  if (v == 0) return "0";
  const int magnitude = int(std::floor(std::log10(std::fabs(v))));
  return format_fixed(v, std::clamp(2 - magnitude, 0, 6));
}

std::string format_percent(double fraction) {
  return std::isfinite(fraction) ? format_fixed(100 * fraction, 1) + "%" : non_finite_text(fraction);
}

std::string format_with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > (n < 0 ? 1 : 0); i -= 3) s.insert(size_t(i), ",");
  return s;
}

std::string format_count(double n) {
  if (!std::isfinite(n)) return non_finite_text(n);
  if (n >= 1e9) return format_fixed(n / 1e9, 2) + "B";
  if (n >= 1e6) return format_fixed(n / 1e6, 2) + "M";
  if (n >= 1e3) return format_fixed(n / 1e3, 1) + "K";
  return format_fixed(n, 0);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return string_printf(u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

std::string format_clock(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long long total = std::llround(std::min(seconds, 3.6e8));  // 100000 h: "never" enough
  const long long hours = total / 3600;
  const int minutes = int(total / 60 % 60);
  const int secs = int(total % 60);
  if (hours > 0) return string_printf("%lld:%02d:%02d", hours, minutes, secs);
  return string_printf("%02d:%02d", minutes, secs);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds)) return non_finite_text(seconds);
  const long long s = std::llround(seconds);
  if (s >= 3600) return string_printf("%lldh %02lldm", s / 3600, s % 3600 / 60);
  if (s >= 60) return string_printf("%lldm %02llds", s / 60, s % 60);
  return string_printf("%llds", s);
}

}  // namespace gqa
