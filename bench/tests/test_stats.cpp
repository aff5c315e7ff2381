// Statistics: the median's confidence interval, Student's t, the line fit, and the verdict that
// must PASS a flat sweep and FAIL a growing one.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "engine.h"
#include "stats.h"

namespace lightning::bench {
namespace {

TEST(Median, OfOddAndEvenCounts) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_TRUE(std::isnan(median({})));
}

TEST(MedianCI, UsesExactBinomialOrderStatistics) {
  std::vector<double> x;
  for (int i = 1; i <= 10; ++i) x.push_back(i);
  const auto ci = median_ci(x);
  // P(Bin(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2): ranks 2 and 9.
  EXPECT_EQ(ci.lo, 2);
  EXPECT_EQ(ci.hi, 9);
  EXPECT_NEAR(ci.coverage, 1 - 2 * 11.0 / 1024, 1e-12);
  EXPECT_EQ(ci.median, 5.5);
}

TEST(MedianCI, FallsBackToTheRangeBelowSixSamplesAndSaysSo) {
  const auto ci = median_ci({1, 2, 3, 4, 5});
  EXPECT_EQ(ci.lo, 1);
  EXPECT_EQ(ci.hi, 5);
  EXPECT_LT(ci.coverage, 0.95);
}

TEST(MedianCI, CoversAtLeastTheLevelForLargeSamples) {
  std::vector<double> x(1000);
  for (int i = 0; i < 1000; ++i) x[i] = i;
  const auto ci = median_ci(x);
  EXPECT_GE(ci.coverage, 0.95);
  EXPECT_LT(ci.coverage, 0.96);
  EXPECT_LT(ci.lo, 499.5);
  EXPECT_GT(ci.hi, 499.5);
}

TEST(RelativeMedianSe, ShrinksWithMoreSamples) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(100, 1);
  std::vector<double> few, many;
  for (int i = 0; i < 10; ++i) few.push_back(noise(rng));
  for (int i = 0; i < 1000; ++i) many.push_back(noise(rng));
  EXPECT_GT(relative_median_se(few), relative_median_se(many));
  EXPECT_NEAR(relative_median_se(many), 1.2533 / std::sqrt(1000.0) / 100, 2e-4);
  EXPECT_EQ(relative_median_se({5, 5, 5}), 0);
}

TEST(StudentT, MatchesTables) {
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.7062, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 2), 4.3027, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 6), 2.4469, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 22), 2.0739, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 1000), 1.9623, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.025, 6), -2.4469, 1e-3);
}

TEST(FitLine, RecoversAnExactLineWithAZeroWidthInterval) {
  const auto f = fit_line({1, 2, 3, 4}, {3, 5, 7, 9});
  EXPECT_NEAR(f.slope, 2, 1e-12);
  EXPECT_NEAR(f.intercept, 1, 1e-12);
  EXPECT_NEAR(f.slope_lo, 2, 1e-9);
  EXPECT_NEAR(f.slope_hi, 2, 1e-9);
  EXPECT_EQ(f.df, 2);
}

std::vector<VerdictSample> sweep(double slope_per_doubling,
                                 double noise_rel,
                                 int repeats,
                                 std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0, noise_rel);
  std::vector<VerdictSample> out;
  for (int r = 0; r < repeats; ++r) {
    for (int k = 0; k < 8; ++k) {  // 1k .. 128k
      const double tps = 100e6 * std::exp2(slope_per_doubling * k) * (1 + noise(rng));
      out.push_back({std::int64_t{1024} << k, tps});
    }
  }
  return out;
}

TEST(Verdict, PassesAFlatSweep) {
  const auto v = constant_throughput_verdict(sweep(0, 0.01, 3, 1));
  EXPECT_EQ(v.verdict, "PASS") << v.reason;
  EXPECT_EQ(v.seqlens.size(), 8u);
  EXPECT_LE(v.max_min_ratio, 1.10);
  EXPECT_EQ(v.fit.df, 22);
}

TEST(Verdict, PassesAFlatSweepWithoutRepeats) {
  const auto v = constant_throughput_verdict(sweep(0, 0.005, 1, 2));
  EXPECT_EQ(v.verdict, "PASS") << v.reason;
}

TEST(Verdict, FailsSoftmaxLikeDecay) {
  // Causal softmax at a fixed token budget: tokens/s halves per doubling of N.
  const auto v = constant_throughput_verdict(sweep(-1, 0.01, 1, 3));
  EXPECT_EQ(v.verdict, "FAIL") << v.reason;
  EXPECT_NEAR(v.fit.slope, -1, 0.02);
}

TEST(Verdict, FailsAGrowingSeries) {
  const auto v = constant_throughput_verdict(sweep(0.08, 0.005, 1, 4));
  EXPECT_EQ(v.verdict, "FAIL") << v.reason;
  EXPECT_GT(v.fit.slope_lo, 0.03);
}

TEST(Verdict, PassesASlopeInsideTheBoundAndFailsOneOutside) {
  // Noise-free, so the interval has no width: 0.017 per doubling (max/min 1.086) passes.
  const auto v = constant_throughput_verdict(sweep(0.017, 0.0, 1, 5));
  EXPECT_LE(v.max_min_ratio, 1.10);
  EXPECT_EQ(v.verdict, "PASS") << v.reason;  // 0.017 is inside +-0.03 with no noise
  const auto w = constant_throughput_verdict(sweep(0.04, 0.0, 1, 5));
  EXPECT_EQ(w.verdict, "FAIL") << w.reason;
}

TEST(Verdict, FailsOneSlowLengthByTheRatio) {
  auto s = sweep(0, 0.0, 1, 6);
  s[3].tokens_per_s *= 0.85;  // one length 15% slow: max/min 1.18
  const auto v = constant_throughput_verdict(s);
  EXPECT_EQ(v.verdict, "FAIL") << v.reason;
  EXPECT_GT(v.max_min_ratio, 1.10);
}

TEST(Verdict, FailsWhenNoiseMakesTheSlopeUnknowable) {
  // Flat on average but so noisy that the slope's interval spills past +-0.03.
  const auto v = constant_throughput_verdict(sweep(0, 0.2, 1, 7));
  EXPECT_EQ(v.verdict, "FAIL") << v.reason;
}

TEST(Verdict, IsNotApplicableBelowThreeLengths) {
  const auto v = constant_throughput_verdict({{1024, 1e8}, {2048, 1e8}, {2048, 1e8}});
  EXPECT_EQ(v.verdict, "N/A");
}

TEST(StopRule, ConvergesOnlyAfterTheMinimums) {
  MeasureConfig c;
  c.min_samples = 5;
  c.min_time_s = 0.01;  // 10 ms
  c.noise = 0.01;
  StopRule rule(c);
  std::vector<double> ms;
  for (int i = 0; i < 4; ++i) {
    ms.push_back(1.0);
    EXPECT_EQ(rule.check(ms, 0.0, false), "") << i;
  }
  for (int i = 0; i < 5; ++i) ms.push_back(1.0);
  EXPECT_EQ(rule.check(ms, 0.0, false), "");  // 9 ms < min time
  ms.push_back(1.0);
  EXPECT_EQ(rule.check(ms, 0.0, false), "converged");
}

TEST(StopRule, StopsAtTheTimeoutTheMaximumAndAnInterrupt) {
  MeasureConfig c;
  c.max_samples = 3;
  c.noise = 1e-9;
  StopRule rule(c);
  std::vector<double> ms = {1, 2};
  EXPECT_EQ(rule.check(ms, 100.0, false), "timeout");
  EXPECT_EQ(rule.check(ms, 0.0, true), "interrupted");
  ms.push_back(3);
  EXPECT_EQ(StopRule(c).check(ms, 0.0, false), "max-samples");
}

}  // namespace
}  // namespace lightning::bench
