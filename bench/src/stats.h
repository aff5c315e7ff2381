// lightning-bench: the statistics of a point (median and its confidence interval, the noise
// estimate that stops sampling) and of a sweep (the constant-throughput verdict).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lightning::bench {

double median(std::vector<double> values);  // NaN when empty

// The median with a distribution-free confidence interval from order statistics: with the
// samples sorted, [x_(k), x_(n+1-k)] covers the true median with probability
// 1 - 2 P(Binomial(n, 1/2) < k); k is the largest rank keeping that >= `level`. Below 6 samples no
// rank reaches 95%: the interval is [min, max] and `coverage` says what it really is.
struct MedianCI {
  double median = 0, lo = 0, hi = 0;
  double coverage = 0;  // the exact coverage of [lo, hi]
  std::int64_t n = 0;
};
MedianCI median_ci(std::vector<double> values, double level = 0.95);

// The relative standard error of the sample median, robustly: sqrt(pi/2) * 1.4826 * MAD /
// sqrt(n) / median (the normal-theory standard error of a median with the MAD as the scale).
// The engine samples until this is under --noise. 0 for identical samples; +inf below 2 samples.
double relative_median_se(const std::vector<double>& values);

struct Summary {
  double mean = 0, stdev = 0, min = 0, max = 0;
};
Summary summarize(const std::vector<double>& values);

// Quantile of Student's t distribution with `df` degrees of freedom (p in (0, 1)).
double student_t_quantile(double p, double df);

// Ordinary least squares y = intercept + slope x, with the slope's 95% CI from the t
// distribution on n - 2 degrees of freedom (NaN bounds when n < 3 or every x is equal).
struct LineFit {
  double slope = 0, intercept = 0, slope_se = 0;
  double slope_lo = 0, slope_hi = 0;
  int df = 0;
  double r2 = 0;
};
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

// The constant-throughput criteria of the issue.
struct VerdictCriteria {
  double max_min_ratio = 1.10;
  double slope_bound = 0.03;  // |slope of log2(tokens/s) per doubling of N|, the whole CI
};

// One measurement entering the verdict: a finished point's median tokens/s at length n.
struct VerdictSample {
  std::int64_t n = 0;
  double tokens_per_s = 0;
};

struct Verdict {
  std::string verdict = "N/A";              // PASS | FAIL | N/A
  std::string reason;                       // one line: why
  std::vector<std::int64_t> seqlens;        // distinct lengths, ascending
  std::vector<double> median_tokens_per_s;  // per length (median over repeats)
  double max_min_ratio = 0;
  LineFit fit;  // log2(tokens/s) against log2(N), over every sample
  int samples = 0;
};

// The verdict of one (provider, mode) over its finished points. Per length, the median over
// repeats; max/min over those; the slope over every point (repeats add degrees of freedom).
// PASS when max/min <= criteria.max_min_ratio and the slope's CI lies within +-slope_bound;
// N/A with fewer than 3 distinct lengths.
Verdict constant_throughput_verdict(const std::vector<VerdictSample>& samples,
                                    const VerdictCriteria& criteria = {});

}  // namespace lightning::bench
