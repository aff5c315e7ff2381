// lightning-bench: the timing engine. One warm-up, then samples until the stopping rule holds:
// at least --min-samples and --min-time of timed samples and a relative standard error of the
// median under --noise, or --max-samples, or the per-point --timeout. Throttled samples (GPU) are
// dropped and counted; every kept sample is returned raw.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "options.h"
#include "provider.h"
#include "result.h"

namespace lightning::bench {

struct MeasureConfig {
  bool cold = true;
  bool profile = false;
  int min_samples = 10;
  int max_samples = 10000;
  double min_time_s = 0.2;
  double noise = 0.005;
  double timeout_s = 10;
  double throttle = 0.75;
  Timer timer = Timer::kEvents;
};
MeasureConfig measure_config(const Options& options);

using SampleCallback = std::function<void(int samples_so_far)>;

class Engine {
 public:
  virtual ~Engine() = default;
  // Fills everything in Timing but the statistics (finish_timing does those).
  virtual Timing measure(Instance& instance,
                         Mode mode,
                         const MeasureConfig& config,
                         const SampleCallback& on_sample,
                         const std::atomic<bool>& interrupted) = 0;
};

// std::chrono around each synchronous run; no cache clearing (the CPU providers' working sets
// dwarf any cache).
std::unique_ptr<Engine> make_cpu_engine();

// The stopping rule. `timed_s` is the sum of the kept samples, `wall_s` the time since the first
// sample started. Returns the stop reason, or "" to continue. The noise estimate (a sort) is
// recomputed only every ~1/64th of the samples past the minimums, so long runs stay linear-ish.
class StopRule {
 public:
  explicit StopRule(const MeasureConfig& config) : config_(config) {}
  std::string check(const std::vector<double>& samples_ms, double wall_s, bool interrupted);
  double last_noise() const { return noise_; }

 private:
  MeasureConfig config_;
  double timed_ms_ = 0;
  std::size_t counted_ = 0, next_noise_check_ = 0;
  double noise_ = 0;
};

// Statistics of the kept samples: median and its CI, summary, noise.
void finish_timing(Timing& timing);

}  // namespace lightning::bench
