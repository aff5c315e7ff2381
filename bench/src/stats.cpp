#include "stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

namespace lightning::bench {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// log P(Binomial(n, 1/2) = j)
double log_binomial_half(std::int64_t n, std::int64_t j) {
  return std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(j) + 1) -
         std::lgamma(static_cast<double>(n - j) + 1) - static_cast<double>(n) * std::log(2.0);
}

// The regularized incomplete beta function I_x(a, b), by the continued fraction of Numerical
// Recipes' betacf (modified Lentz), using the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) for convergence.
double incomplete_beta_cf(double a, double b, double x) {
  constexpr int kMaxIterations = 500;
  constexpr double kEps = 1e-15, kTiny = 1e-300;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIterations; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}

double regularized_incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double front = std::exp(log_front);
  if (x < (a + 1) / (a + b + 2)) return front * incomplete_beta_cf(a, b, x) / a;
  return 1 - front * incomplete_beta_cf(b, a, 1 - x) / b;
}

// P(T <= t) for Student's t with df degrees of freedom.
double student_t_cdf(double t, double df) {
  const double x = df / (df + t * t);
  const double tail = 0.5 * regularized_incomplete_beta(df / 2, 0.5, x);
  return t >= 0 ? 1 - tail : tail;
}

}  // namespace

double median(std::vector<double> values) {
  if (values.empty()) return kNaN;
  const std::size_t n = values.size();
  std::sort(values.begin(), values.end());
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

MedianCI median_ci(std::vector<double> values, double level) {
  MedianCI ci;
  ci.n = static_cast<std::int64_t>(values.size());
  if (values.empty()) {
    ci.median = ci.lo = ci.hi = kNaN;
    return ci;
  }
  std::sort(values.begin(), values.end());
  ci.median = median(values);
  const std::int64_t n = ci.n;
  const double alpha_half = (1 - level) / 2;
  // Largest k (1-based) with P(X <= k - 1) <= alpha/2, X ~ Binomial(n, 1/2).
  std::int64_t k = 0;
  double cdf = 0;
  for (std::int64_t j = 0; j <= n / 2; ++j) {
    const double next = cdf + std::exp(log_binomial_half(n, j));
    if (next > alpha_half) break;
    cdf = next;
    k = j + 1;
  }
  if (k < 1) {
    ci.lo = values.front();
    ci.hi = values.back();
    ci.coverage = 1 - 2 * std::exp(log_binomial_half(n, 0));
  } else {
    ci.lo = values[static_cast<std::size_t>(k - 1)];
    ci.hi = values[static_cast<std::size_t>(n - k)];
    ci.coverage = 1 - 2 * cdf;
  }
  return ci;
}

double relative_median_se(const std::vector<double>& values) {
  if (values.size() < 2) return std::numeric_limits<double>::infinity();
  const double m = median(values);
  std::vector<double> dev(values.size());
  std::transform(values.begin(), values.end(), dev.begin(),
                 [m](double v) { return std::fabs(v - m); });
  const double mad = median(dev);
  constexpr double kSqrtHalfPi =
      1.2533141373155003;                 // asymptotic se(median) = sqrt(pi/2) sigma/sqrt(n)
  constexpr double kMadToSigma = 1.4826;  // sigma of a normal from its MAD
  if (!(m > 0)) return std::numeric_limits<double>::infinity();
  return kSqrtHalfPi * kMadToSigma * mad / std::sqrt(static_cast<double>(values.size())) / m;
}

Summary summarize(const std::vector<double>& values) {
  Summary s;
  if (values.empty()) {
    s.mean = s.stdev = s.min = s.max = kNaN;
    return s;
  }
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.stdev = values.size() > 1 ? std::sqrt(ss / static_cast<double>(values.size() - 1)) : 0;
  return s;
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) return kNaN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  // The CDF is increasing: bisect on [0, hi], growing hi until it brackets p.
  double lo = 0, hi = 16;
  while (student_t_cdf(hi, df) < p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  LineFit f;
  const std::size_t n = std::min(x.size(), y.size());
  f.df = static_cast<int>(n) - 2;
  f.slope = f.intercept = f.slope_se = f.slope_lo = f.slope_hi = f.r2 = kNaN;
  if (n < 2) return f;
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0)) return f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  double ssr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = y[i] - (f.intercept + f.slope * x[i]);
    ssr += r * r;
  }
  f.r2 = syy > 0 ? 1 - ssr / syy : 1;
  if (f.df < 1) return f;
  f.slope_se = std::sqrt(ssr / f.df / sxx);
  const double t = student_t_quantile(0.975, f.df);
  f.slope_lo = f.slope - t * f.slope_se;
  f.slope_hi = f.slope + t * f.slope_se;
  return f;
}

Verdict constant_throughput_verdict(const std::vector<VerdictSample>& samples,
                                    const VerdictCriteria& criteria) {
  Verdict v;
  std::map<std::int64_t, std::vector<double>> by_n;
  std::vector<double> x, y;
  for (const auto& s : samples) {
    if (!(s.tokens_per_s > 0) || !std::isfinite(s.tokens_per_s) || s.n < 1) continue;
    by_n[s.n].push_back(s.tokens_per_s);
    x.push_back(std::log2(static_cast<double>(s.n)));
    y.push_back(std::log2(s.tokens_per_s));
  }
  v.samples = static_cast<int>(x.size());
  for (const auto& [n, values] : by_n) {
    v.seqlens.push_back(n);
    v.median_tokens_per_s.push_back(median(values));
  }
  if (v.seqlens.size() < 3) {
    v.verdict = "N/A";
    v.reason = "fewer than 3 sequence lengths finished (" + std::to_string(v.seqlens.size()) + ")";
    v.max_min_ratio =
        v.median_tokens_per_s.empty()
            ? kNaN
            : *std::max_element(v.median_tokens_per_s.begin(), v.median_tokens_per_s.end()) /
                  *std::min_element(v.median_tokens_per_s.begin(), v.median_tokens_per_s.end());
    v.fit = fit_line(x, y);
    return v;
  }
  const auto [mn, mx] =
      std::minmax_element(v.median_tokens_per_s.begin(), v.median_tokens_per_s.end());
  v.max_min_ratio = *mx / *mn;
  v.fit = fit_line(x, y);
  const bool ratio_ok = v.max_min_ratio <= criteria.max_min_ratio;
  const bool slope_ok =
      v.fit.slope_lo >= -criteria.slope_bound && v.fit.slope_hi <= criteria.slope_bound;
  v.verdict = ratio_ok && slope_ok ? "PASS" : "FAIL";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "max/min %.3f (%s %.2f), slope %+.4f per doubling, 95%% CI [%+.4f, %+.4f] (%s "
                "+-%.2f)",
                v.max_min_ratio, ratio_ok ? "<=" : ">", criteria.max_min_ratio, v.fit.slope,
                v.fit.slope_lo, v.fit.slope_hi, slope_ok ? "within" : "not within",
                criteria.slope_bound);
  v.reason = buf;
  return v;
}

}  // namespace lightning::bench
