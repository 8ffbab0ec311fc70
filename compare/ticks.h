// Axis ticks for the report's charts. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace gqa::report {

// Axis ticks at multiples of 1, 2, 2.5 or 5 × 10^k: the step whose ticks, from the multiple at or
// below lo to the one at or above hi, come closest to target_count (ties: the smaller step).
// lo/hi of the result are those outer ticks; `decimals` is the fewest digits after the point that
// print every value exactly. An empty range (lo == hi) is widened around its value; lo > hi is
// swapped. Throws std::invalid_argument for non-finite input or target_count < 2.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
  int decimals = 0;
  std::string label(double value) const;  // value with `decimals` digits, never "-0"
};
Ticks nice_ticks(double lo, double hi, int target_count = 5);

}  // namespace gqa::report
