#include "eval/interleaved_timing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace gqa {
namespace {

// One pass: `rounds` rounds, each running every callable once in order; recorded when `record`.
std::vector<RepeatTimes> run_rounds(const std::vector<std::function<double()>>& runs, int rounds, bool record) {
  std::vector<RepeatTimes> times(runs.size());
  for (int round = 0; round < rounds; ++round)
    for (size_t i = 0; i < runs.size(); ++i) {
      const double seconds = runs[i]();
      if (record) times[i].seconds.push_back(seconds);
    }
  return times;
}

}  // namespace

double RepeatTimes::min() const { return seconds.empty() ? 0 : *std::min_element(seconds.begin(), seconds.end()); }

double RepeatTimes::max() const { return seconds.empty() ? 0 : *std::max_element(seconds.begin(), seconds.end()); }

double RepeatTimes::spread() const {
  if (seconds.size() < 2) return 0;
  if (std::any_of(seconds.begin(), seconds.end(), [](double s) { return std::isnan(s); }))
    return std::numeric_limits<double>::quiet_NaN();
  const double lo = min(), hi = max();
  if (lo > 0) return hi / lo - 1;
  return hi > lo ? std::numeric_limits<double>::infinity() : 0;
}

double InterleavedTiming::spread() const {
  double largest = 0;
  for (const RepeatTimes& r : runs) largest = std::max(largest, r.spread());
  return largest;
}

InterleavedTiming time_interleaved(const std::vector<std::function<double()>>& runs,
                                   const InterleavedTimingOptions& options) {
  if (runs.empty()) throw std::invalid_argument("time_interleaved: no runs to time");
  if (options.repeats < 1) throw std::invalid_argument("time_interleaved: repeats must be at least 1");
  run_rounds(runs, options.warmups, false);
  InterleavedTiming timing;
  timing.runs = run_rounds(runs, options.repeats, true);
  // Written so that a NaN spread (a run that returned NaN seconds) counts as noisy too.
  const auto noisy = [&](const std::vector<RepeatTimes>& pass) {
    return std::any_of(pass.begin(), pass.end(),
                       [&](const RepeatTimes& r) { return !(r.spread() <= options.noisy_spread); });
  };
  if (noisy(timing.runs)) {
    for (const RepeatTimes& r : timing.runs) timing.first_pass_spreads.push_back(r.spread());
    timing.runs = run_rounds(runs, options.repeats, true);
    timing.passes = 2;
    timing.noisy = noisy(timing.runs);
  }
  return timing;
}

}  // namespace gqa
