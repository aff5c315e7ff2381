#include "engine.h"

#include <chrono>
#include <limits>

namespace lightning::bench {

MeasureConfig measure_config(const Options& o) {
  MeasureConfig c;
  c.cold = !o.warm;
  c.profile = o.profile;
  c.min_samples = o.min_samples;
  c.max_samples = o.max_samples;
  c.min_time_s = o.min_time_s;
  c.noise = o.noise;
  c.timeout_s = o.timeout_s;
  c.throttle = o.throttle;
  c.timer = o.timer;
  return c;
}

std::string StopRule::check(const std::vector<double>& samples_ms,
                            double wall_s,
                            bool interrupted) {
  for (; counted_ < samples_ms.size(); ++counted_) timed_ms_ += samples_ms[counted_];
  const std::size_t n = samples_ms.size();
  if (interrupted) return "interrupted";
  if (config_.profile && n >= 1) return "profile";
  if (n >= static_cast<std::size_t>(config_.max_samples)) return "max-samples";
  if (n >= static_cast<std::size_t>(config_.min_samples) && timed_ms_ >= 1e3 * config_.min_time_s &&
      n >= next_noise_check_) {
    noise_ = relative_median_se(samples_ms);
    next_noise_check_ = n + std::max<std::size_t>(1, n / 64);
    if (noise_ <= config_.noise) return "converged";
  }
  if (wall_s >= config_.timeout_s) {
    if (n >= 2) noise_ = relative_median_se(samples_ms);
    return "timeout";
  }
  return "";
}

void finish_timing(Timing& t) {
  t.ci = median_ci(t.samples_ms);
  t.summary = summarize(t.samples_ms);
  t.noise = t.samples_ms.size() >= 2 ? relative_median_se(t.samples_ms)
                                     : std::numeric_limits<double>::quiet_NaN();
}

namespace {

class CpuEngine final : public Engine {
 public:
  Timing measure(Instance& instance,
                 Mode mode,
                 const MeasureConfig& config,
                 const SampleCallback& on_sample,
                 const std::atomic<bool>& interrupted) override {
    using Clock = std::chrono::steady_clock;
    Timing t;
    t.timer = "host";
    t.cache = "host";
    if (!config.profile) {
      const auto w0 = Clock::now();
      instance.run(mode);
      t.warmup_ms = std::chrono::duration<double, std::milli>(Clock::now() - w0).count();
    }
    StopRule rule(config);
    const auto start = Clock::now();
    for (;;) {
      const auto s0 = Clock::now();
      instance.run(mode);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s0).count();
      t.samples_ms.push_back(ms);
      if (on_sample) on_sample(static_cast<int>(t.samples_ms.size()));
      const double wall = std::chrono::duration<double>(Clock::now() - start).count();
      t.stop_reason = rule.check(t.samples_ms, wall, interrupted.load());
      if (!t.stop_reason.empty()) break;
    }
    t.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return t;
  }
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine() {
  return std::make_unique<CpuEngine>();
}

}  // namespace lightning::bench
