#include "compare/ticks.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/format.h"

namespace gqa::report {

std::string Ticks::label(double value) const {
  if (std::fabs(value) < step * 1e-9) value = 0;  // no "-0.0" from rounding
  return format_fixed(value, decimals);
}

Ticks nice_ticks(double lo, double hi, int target_count) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) throw std::invalid_argument("nice_ticks: non-finite range");
  if (target_count < 2) throw std::invalid_argument("nice_ticks: target_count must be at least 2");
  if (lo > hi) std::swap(lo, hi);
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  if (hi - lo <= scale * 1e-9) {  // one value: a window around it
    const double half = scale > 0 ? 0.1 * scale : 1.0;
    lo -= half, hi += half;
  }
  // Among the nice steps near (hi - lo) / (target_count - 1), the one whose ticks come closest to
  // target_count in number; a tie goes to the smaller step (more ticks to read values by).
  const int base_exponent = int(std::floor(std::log10((hi - lo) / (target_count - 1))));
  const auto tick_count = [&](double step) { return std::ceil(hi / step - 1e-9) - std::floor(lo / step + 1e-9) + 1; };
  double best_mantissa = 1, best_step = 0;
  int best_exponent = 0;
  for (int exponent = base_exponent - 1; exponent <= base_exponent + 1; ++exponent)
    for (double mantissa : {1.0, 2.0, 2.5, 5.0}) {
      const double step = mantissa * std::pow(10.0, exponent);
      const double miss = std::fabs(tick_count(step) - target_count);
      if (best_step == 0 || miss < std::fabs(tick_count(best_step) - target_count)) {
        best_mantissa = mantissa, best_exponent = exponent, best_step = step;
      }
    }
  Ticks ticks;
  ticks.step = best_step;
  ticks.decimals = std::max(0, -best_exponent) + (best_mantissa == 2.5 && best_exponent <= 0 ? 1 : 0);
  // Tick indices are integers, so values are exact multiples of the step (no drift).
  const double first = std::floor(lo / best_step + 1e-9), last = std::ceil(hi / best_step - 1e-9);
  for (double i = first; i <= last + 0.5; ++i) ticks.values.push_back(i * best_step);
  ticks.lo = ticks.values.front();
  ticks.hi = ticks.values.back();
  return ticks;
}

}  // namespace gqa::report
