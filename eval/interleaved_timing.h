// Timings that survive a busy machine. Runs to compare (a model and its baseline) take turns,
// A, B, A, B, ..., so that load from another job lands on both instead of on whichever happened
// to run while it lasted; each run reports the minimum of its repeats (load only ever adds time)
// with the spread beside it; repeats that disagree beyond a threshold mark the timing noisy, and a
// noisy timing is measured once more before it is given up as noisy. Torch-free: the runs are
// callables that run once and return seconds, so tests inject fakes.
#pragma once
#include <functional>
#include <vector>

namespace gqa {

// The default noisy threshold on the spread (max/min - 1 of one run's repeats): 25%. Measured on
// the project's 2-core VM (docs/benchmarks.md), the repeats of a decode step agree within 1-9%
// when nothing else runs, and spread 3-100% (1 thread) or up to 170x (2 threads) with another job
// beside them (issue #20: 188 ms beside 0.95 ms). The speedups a comparison reports are 1-2x, so
// repeats 25% apart already disagree by as much as the effect being measured.
inline constexpr double kDefaultNoisySpread = 0.25;

struct InterleavedTimingOptions {
  int warmups = 1;  // rounds run first and not recorded (allocator, kernels, page faults)
  int repeats = 3;  // recorded rounds per pass
  double noisy_spread = kDefaultNoisySpread;
};

// One run's recorded repeats in a pass.
struct RepeatTimes {
  std::vector<double> seconds;  // in the order they ran
  double min() const;
  double max() const;
  // max / min - 1: 0 when the repeats agree, 1 when the slowest took twice the fastest (0 for
  // fewer than two repeats; infinity when the fastest is not positive and another is; NaN when a
  // repeat is NaN).
  double spread() const;
};

struct InterleavedTiming {
  std::vector<RepeatTimes> runs;  // one per callable, in the order given: the pass reported
  // Some run's spread was above options.noisy_spread in the pass reported (after a re-measure).
  bool noisy = false;
  int passes = 1;                          // 2 when the first pass was noisy and every run was measured again
  std::vector<double> first_pass_spreads;  // per run, when passes == 2 (what triggered it)
  double spread() const;                   // the largest run's spread in the pass reported
};

// Runs every callable in turn, options.warmups rounds unrecorded and then options.repeats
// recorded rounds (A, B, A, B, ... for two). When some run's spread is above
// options.noisy_spread, the recorded rounds are run once more (no warm-up: the runs are warm) and
// that second pass, not the first, is reported: the first pass's disagreement says the machine
// was busy during it, its fastest repeat included. The timing is noisy when the second pass
// disagrees too. Throws std::invalid_argument without runs or with repeats < 1.
InterleavedTiming time_interleaved(const std::vector<std::function<double()>>& runs,
                                   const InterleavedTimingOptions& options);

}  // namespace gqa
