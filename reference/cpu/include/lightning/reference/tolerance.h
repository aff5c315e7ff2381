// The verification rules of DESIGN.md section 5, in one place: rounding to a storage dtype on the
// host, error statistics with the first mismatches by coordinate, and the pass/fail rule
//   max|T - T_ref| <= r * max|T_base - T_ref| + a_T       (r = 2 forward, 3 gradients)
//   a_T = 2 * max|round(round(T_ref + 0.3) - 0.3) - round(T_ref)|   (in T's dtype)
//   rel_l2 = ||T - T_ref|| / (||T_ref|| + 1e-8) < 5e-3 (bf16, fp16) or 1e-5 (fp32); NaN fails.
// Host-only and C++17, so the GPU tests and lightning-bench share it.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <lightning/lightning.h>

namespace lightning::ref {

// Round a float to bf16 (round to nearest even) and back. NaN stays NaN.
inline float round_to_bf16(float x) {
  if (std::isnan(x)) return x;
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const std::uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

// Round a float to IEEE fp16 (round to nearest even, overflow to inf, subnormals kept) and back.
inline float round_to_fp16(float x) {
  if (std::isnan(x) || std::isinf(x)) return x;
  const float ax = std::fabs(x);
  if (ax >= 65520.0f) return std::copysign(INFINITY, x);  // past the largest fp16 after rounding
  int exp;
  std::frexp(ax, &exp);  // ax = m * 2^exp, m in [0.5, 1)
  // fp16 has 11 significant bits for normals (exp >= -13); below, a fixed quantum of 2^-24.
  const int e = std::max(exp, -13);
  const float quantum = std::ldexp(1.0f, e - 11);
  return std::copysign(std::nearbyint(ax / quantum) * quantum, x);
}

inline double round_to(lightning_dtype_t dtype, double x) {
  switch (dtype) {
    case LIGHTNING_BF16:
      return round_to_bf16(static_cast<float>(x));
    case LIGHTNING_FP16:
      return round_to_fp16(static_cast<float>(x));
    case LIGHTNING_FP32:
    default:
      return static_cast<float>(x);
  }
}

inline double rel_l2_limit(lightning_dtype_t dtype) {
  return dtype == LIGHTNING_FP32 ? 1e-5 : 5e-3;
}

struct Mismatch {
  std::array<std::int64_t, 4> index{};  // [b, h, n, d] (or [b, h, d, e] for states)
  double got = 0, want = 0;
};

struct ErrorStats {
  double max_abs = 0;  // max |T - T_ref|
  double mean_abs = 0;
  double rel_l2 = 0;       // ||T - T_ref|| / (||T_ref|| + 1e-8)
  double ref_max_abs = 0;  // max |T_ref|, for scale
  std::int64_t nan_count = 0;
  std::int64_t count = 0;
};

// Statistics of `got` against `want` (same length; contiguous over `shape`).
inline ErrorStats error_stats(const std::vector<double>& got, const std::vector<double>& want) {
  ErrorStats s;
  s.count = static_cast<std::int64_t>(got.size());
  double diff2 = 0, ref2 = 0, sum = 0;
  const std::size_t n = std::min(got.size(), want.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isnan(got[i]) || std::isinf(got[i])) {
      ++s.nan_count;
      continue;
    }
    const double d = std::fabs(got[i] - want[i]);
    s.max_abs = std::max(s.max_abs, d);
    s.ref_max_abs = std::max(s.ref_max_abs, std::fabs(want[i]));
    sum += d;
    diff2 += d * d;
    ref2 += want[i] * want[i];
  }
  if (got.size() != want.size()) s.nan_count += 1;  // a length mismatch can never pass
  s.mean_abs = n ? sum / static_cast<double>(n) : 0;
  s.rel_l2 = std::sqrt(diff2) / (std::sqrt(ref2) + 1e-8);
  return s;
}

// a_T of the rule: the rounding error of T's dtype at the reference's magnitudes.
inline double rounding_slack(const std::vector<double>& want, lightning_dtype_t dtype) {
  double worst = 0;
  for (double w : want) {
    const double a = round_to(dtype, round_to(dtype, w + 0.3) - 0.3);
    worst = std::max(worst, std::fabs(a - round_to(dtype, w)));
  }
  return 2 * worst;
}

struct Verdict {
  bool pass = false;
  ErrorStats err;       // the implementation against the reference
  ErrorStats base_err;  // the storage-dtype baseline against the reference
  double max_abs_limit = 0;
  double rel_l2_limit = 0;
  std::vector<Mismatch> first_mismatches;  // up to 5, by coordinate
  std::string message;                     // one line: name, errors, limits, first mismatches
};

// Apply rules 1 and 2 to tensor `name` of logical shape `shape` (contiguous, row-major).
inline Verdict check_tensor(const std::string& name,
                            const std::vector<double>& got,
                            const std::vector<double>& baseline,
                            const std::vector<double>& ref,
                            lightning_dtype_t dtype,
                            bool gradient,
                            const std::array<std::int64_t, 4>& shape) {
  Verdict v;
  v.err = error_stats(got, ref);
  v.base_err = error_stats(baseline, ref);
  const double r = gradient ? 3.0 : 2.0;
  v.max_abs_limit = r * v.base_err.max_abs + rounding_slack(ref, dtype);
  v.rel_l2_limit = rel_l2_limit(dtype);
  v.pass =
      v.err.nan_count == 0 && v.err.max_abs <= v.max_abs_limit && v.err.rel_l2 < v.rel_l2_limit;
  if (!v.pass) {
    const std::size_t n = std::min(got.size(), ref.size());
    for (std::size_t i = 0; i < n && v.first_mismatches.size() < 5; ++i) {
      const double d = std::fabs(got[i] - ref[i]);
      if (!(d <= v.max_abs_limit)) {  // NaN counts as a mismatch
        Mismatch m;
        std::int64_t rest = static_cast<std::int64_t>(i);
        for (int a = 3; a >= 0; --a) {
          m.index[a] = rest % shape[a];
          rest /= shape[a];
        }
        m.got = got[i];
        m.want = ref[i];
        v.first_mismatches.push_back(m);
      }
    }
  }
  std::ostringstream os;
  os << name << ": " << (v.pass ? "ok" : "FAIL") << " max_abs " << v.err.max_abs << " (limit "
     << v.max_abs_limit << ", baseline " << v.base_err.max_abs << ") rel_l2 " << v.err.rel_l2
     << " (limit " << v.rel_l2_limit << ")";
  if (v.err.nan_count) os << " nan/inf " << v.err.nan_count;
  for (const auto& m : v.first_mismatches) {
    os << " [" << m.index[0] << "," << m.index[1] << "," << m.index[2] << "," << m.index[3]
       << "] got " << m.got << " want " << m.want << ";";
  }
  v.message = os.str();
  return v;
}

}  // namespace lightning::ref
