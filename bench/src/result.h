// lightning-bench: what one point and one sweep produce. Filled by the runner, read by the
// report writer, the table and the verdicts.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"
#include "options.h"
#include "plan.h"
#include "stats.h"

namespace lightning::bench {

// DESIGN.md section 5 rules 1 and 2 applied to one tensor.
struct TensorCheck {
  std::string name;  // o, final_state, dq, dk, dv, dinitial_state
  bool pass = false;
  double max_abs = 0, max_abs_limit = 0, baseline_max_abs = 0;
  double rel_l2 = 0, rel_l2_limit = 0;
  std::int64_t nan_count = 0;
  std::string message;  // tolerance.h's one line, with the first mismatches
};

struct Verification {
  std::string status = "not-run";  // passed | failed | skipped | not-run
  std::string reference;           // e.g. cpu-fp64-blocked, gpu-fp32-recurrent, cpu-fp64-softmax
  std::string baseline;            // e.g. cpu-fp32-blocked-rounded
  std::vector<std::array<std::int64_t, 2>> heads;  // the (b, h) pairs checked
  std::vector<TensorCheck> tensors;
  std::string message;  // one line
  double seconds = 0;
};

struct Timing {
  std::string timer = "events";             // the timer the statistics use: events | cupti | host
  std::string cache = "cold";               // cold | warm | host
  std::vector<double> samples_ms;           // every kept sample of that timer, in order
  std::vector<double> event_samples_ms;     // CUDA events (also kept when the timer is cupti)
  std::vector<double> cupti_samples_ms;     // CUPTI kernel-busy time (empty unless --timer cupti)
  std::vector<double> sm_clock_mhz;         // per kept sample; 0 where unknown
  std::vector<double> discarded_clock_mhz;  // clocks of the samples discarded as throttled
  int discarded_throttled = 0;
  double reference_clock_mhz = 0;  // the clock the throttle threshold is a fraction of
  std::string stop_reason;         // converged | timeout | max-samples | profile | interrupted
  double warmup_ms = 0;
  double wall_s = 0;  // sampling loop, wall clock
  MedianCI ci;        // of samples_ms
  Summary summary;
  double noise = 0;  // relative standard error of the median at the stop
};

struct PointResult {
  Point point;
  std::string status = "ok";  // ok | skipped | failed
  std::string reason;         // one line for skipped and failed
  Family family = Family::kLinearBlocked;
  bool gpu = false;
  bool timed = false;  // timing holds samples
  Timing timing;
  Work work;
  double tokens_per_s = 0, tokens_per_s_lo = 0, tokens_per_s_hi = 0;
  double gb_per_s = 0;
  double pct_peak_bandwidth = -1;  // < 0: unknown
  double tflop_per_s = 0;
  std::int64_t peak_bytes = -1;  // < 0: unknown
  std::string memory_source;     // tracking-allocator | host-buffers
  Verification verification;
  std::string started_at;
  double elapsed_s = 0;
};

// The verdict of one (provider, mode) over a sweep.
struct SweepVerdict {
  std::string provider;
  Mode mode = Mode::kFwd;
  Verdict verdict;
  int points_ok = 0, points_skipped = 0, points_failed = 0;
  std::vector<std::int64_t> seqlens_planned;  // every length of the sweep
  bool complete = false;                      // every planned length has a finished point
  // Fixed memory: max / min of the peak bytes over the finished points (1 = constant).
  double peak_bytes_max_min_ratio = 0;
  std::int64_t peak_bytes_max = -1;
};

std::vector<SweepVerdict> compute_verdicts(const Options& options,
                                           const std::vector<PointResult>& results,
                                           const VerdictCriteria& criteria = {});

// "PASS lightning fwd: max/min 1.031 (<= 1.10), slope ... [8 of 8 lengths, 1k..128k]"
std::string verdict_line(const SweepVerdict& v);

}  // namespace lightning::bench
