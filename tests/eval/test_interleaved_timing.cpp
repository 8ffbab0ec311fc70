// Interleaved timing with injected runs: the order A, B, A, B, ..., the minimum reported, one slow
// repeat flagging the timing noisy, exactly one re-measure of a noisy pass, and a clean
// re-measure clearing the flag.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "eval/interleaved_timing.h"

namespace gqa {
namespace {

// A fake run: returns its scripted times in order (the last one again once they run out) and
// writes its name into the shared call log.
std::function<double()> scripted(char name, std::vector<double> times, std::string& calls) {
  return [name, times, &calls, next = size_t(0)]() mutable {
    calls += name;
    const double t = times[std::min(next, times.size() - 1)];
    ++next;
    return t;
  };
}

InterleavedTimingOptions options(int warmups, int repeats, double noisy_spread = kDefaultNoisySpread) {
  InterleavedTimingOptions o;
  o.warmups = warmups;
  o.repeats = repeats;
  o.noisy_spread = noisy_spread;
  return o;
}

TEST(InterleavedTiming, RunsTakeTurnsAndTheMinimumIsReported) {
  std::string calls;
  // The first time of each is the warm-up: slow, and not recorded.
  const InterleavedTiming t = time_interleaved(
      {scripted('A', {9.0, 1.05, 1.00, 1.10}, calls), scripted('B', {7.0, 2.2, 2.1, 2.0}, calls)}, options(1, 3));
  EXPECT_EQ(calls, "ABABABAB");
  ASSERT_EQ(t.runs.size(), 2u);
  EXPECT_EQ(t.runs[0].seconds, (std::vector<double>{1.05, 1.00, 1.10}));
  EXPECT_DOUBLE_EQ(t.runs[0].min(), 1.00);
  EXPECT_DOUBLE_EQ(t.runs[1].min(), 2.0);
  EXPECT_NEAR(t.runs[0].spread(), 0.10, 1e-12);
  EXPECT_NEAR(t.runs[1].spread(), 0.10, 1e-12);
  EXPECT_NEAR(t.spread(), 0.10, 1e-12);
  EXPECT_FALSE(t.noisy);
  EXPECT_EQ(t.passes, 1);
  EXPECT_TRUE(t.first_pass_spreads.empty());
}

TEST(InterleavedTiming, ThreeRunsTakeTurnsToo) {
  std::string calls;
  time_interleaved({scripted('A', {1}, calls), scripted('B', {1}, calls), scripted('C', {1}, calls)}, options(2, 2));
  EXPECT_EQ(calls, "ABCABCABCABC");
}

// One slow repeat of the baseline in the first pass: noisy, so every run is measured exactly once
// more, interleaved again and without a warm-up; the clean second pass is reported, unflagged.
TEST(InterleavedTiming, OneSlowRepeatTriggersOneRemeasureThatClearsTheFlag) {
  std::string calls;
  const InterleavedTiming t = time_interleaved({scripted('A', {1.0, 1.0, 1.0, 1.0, 1.01, 1.02, 1.0}, calls),
                                                scripted('B', {2.0, 2.0, 180.0, 2.0, 2.0, 2.02, 2.01}, calls)},
                                               options(1, 3));
  EXPECT_EQ(calls,
            "AB"
            "ABABAB"
            "ABABAB");
  EXPECT_EQ(t.passes, 2);
  EXPECT_FALSE(t.noisy);
  ASSERT_EQ(t.first_pass_spreads.size(), 2u);
  EXPECT_DOUBLE_EQ(t.first_pass_spreads[0], 0.0);
  EXPECT_NEAR(t.first_pass_spreads[1], 89.0, 1e-9);
  EXPECT_EQ(t.runs[1].seconds, (std::vector<double>{2.0, 2.02, 2.01}));
  EXPECT_DOUBLE_EQ(t.runs[0].min(), 1.0);
  EXPECT_DOUBLE_EQ(t.runs[1].min(), 2.0);
}

// Slow repeats in both passes: one re-measure, then the timing is given up as noisy; the
// second pass is what is reported.
TEST(InterleavedTiming, NoisyTwiceStaysNoisyAfterExactlyOneRemeasure) {
  std::string calls;
  const InterleavedTiming t = time_interleaved(
      {scripted('A', {1.0, 1.0, 5.0, 1.0, 1.0, 3.0, 1.0}, calls), scripted('B', {2.0}, calls)}, options(1, 3));
  EXPECT_EQ(calls,
            "AB"
            "ABABAB"
            "ABABAB");
  EXPECT_EQ(t.passes, 2);
  EXPECT_TRUE(t.noisy);
  EXPECT_NEAR(t.first_pass_spreads[0], 4.0, 1e-12);
  EXPECT_EQ(t.runs[0].seconds, (std::vector<double>{1.0, 3.0, 1.0}));
  EXPECT_DOUBLE_EQ(t.runs[0].min(), 1.0);
  EXPECT_NEAR(t.spread(), 2.0, 1e-12);
}

TEST(InterleavedTiming, ThresholdIsAnOption) {
  std::string calls;
  // 20% apart in both passes: clean at the default 25%, noisy at 10%.
  const auto run = [&](double limit) {
    calls.clear();
    return time_interleaved({scripted('A', {1.0, 1.2, 1.0, 1.2}, calls)}, options(0, 2, limit));
  };
  EXPECT_FALSE(run(kDefaultNoisySpread).noisy);
  EXPECT_EQ(calls, "AA");
  const InterleavedTiming strict = run(0.10);
  EXPECT_TRUE(strict.noisy);
  EXPECT_EQ(strict.passes, 2);
  EXPECT_EQ(calls, "AAAA");
}

TEST(InterleavedTiming, SpreadEdgeCases) {
  RepeatTimes one{{3.0}};
  EXPECT_EQ(one.spread(), 0.0);
  EXPECT_EQ(RepeatTimes{}.spread(), 0.0);
  RepeatTimes zero_and_more{{0.0, 1.0}};
  EXPECT_TRUE(std::isinf(zero_and_more.spread()));
  RepeatTimes zeros{{0.0, 0.0}};
  EXPECT_EQ(zeros.spread(), 0.0);
  // A NaN time counts as noisy rather than slipping through a comparison.
  std::string calls;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(time_interleaved({scripted('A', {1.0, nan}, calls)}, options(0, 2)).noisy);
}

TEST(InterleavedTiming, RefusesNothingToTime) {
  EXPECT_THROW(time_interleaved({}, options(1, 3)), std::invalid_argument);
  std::string calls;
  EXPECT_THROW(time_interleaved({scripted('A', {1.0}, calls)}, options(1, 0)), std::invalid_argument);
  EXPECT_EQ(calls, "");
}

}  // namespace
}  // namespace gqa
