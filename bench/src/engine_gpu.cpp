// The GPU timing engine (NVBench's cold measurement, rebuilt): per sample, an L2-sized buffer is
// cleared before the start event (outside the timed region), the pass runs between two CUDA
// events on the bench stream, CUPTI (with --timer cupti) adds the kernels' busy time, and the SM
// clock is measured right after; a sample whose clock is below --throttle of the device's maximum
// is discarded and counted. Clocks and power settings are never changed.
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>

#include "cupti_timer.h"
#include "gpu_internal.h"
#include "nvtx.h"

namespace lightning::bench {

namespace {

// Twice the L2: on Hopper the L2 is two partitions and a line may live in the far one; clearing
// twice its size evicts everything a pass left there. 64 MiB where the size is unknown.
std::size_t flush_bytes_for(const gpu::DeviceInfo& info) {
  return info.l2_bytes > 0 ? 2 * info.l2_bytes : std::size_t{64} << 20;
}

// NVBench's recovery pause after a throttled sample.
constexpr auto kThrottleRecovery = std::chrono::milliseconds(50);

class CudaEvent {
 public:
  CudaEvent() { LIGHTNING_CUDA_CHECK(cudaEventCreate(&event_)); }
  ~CudaEvent() { cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

class GpuEngine final : public Engine {
 public:
  GpuEngine(cudaStream_t stream,
            const gpu::DeviceInfo& info,
            const Options& options,
            GpuEngineSetup* setup)
      : stream_(stream),
        reference_clock_mhz_(info.sm_clock_khz / 1000.0),
        flush_(flush_bytes_for(info)) {
    if (setup) setup->flush_bytes = flush_.bytes();
    if (options.timer == Timer::kCupti) {
      std::string error;
      cupti_ = CuptiKernelTimer::instance().enable(&error);
      if (setup) {
        setup->cupti = cupti_;
        setup->note = cupti_ ? "CUPTI kernel activity records: per sample, the union of the "
                               "kernels' execution intervals (launch gaps excluded)"
                             : error + "; falling back to CUDA events";
      }
    } else if (setup) {
      setup->note = "CUDA events around each sample on the bench stream";
    }
  }

  Timing measure(Instance& instance,
                 Mode mode,
                 const MeasureConfig& config,
                 const SampleCallback& on_sample,
                 const std::atomic<bool>& interrupted) override {
    using Clock = std::chrono::steady_clock;
    Timing t;
    t.timer = cupti_ ? "cupti" : "events";
    t.cache = config.cold ? "cold" : "warm";
    t.reference_clock_mhz = reference_clock_mhz_;
    if (!config.profile) {
      NvtxRange range("warmup");
      t.warmup_ms = timed_run(instance, mode);
    } else {
      cudaProfilerStart();  // for nsys --capture-range=cudaProfilerApi
    }
    StopRule rule(config);
    const auto start = Clock::now();
    for (int i = 0;; ++i) {
      if (config.cold) {
        LIGHTNING_CUDA_CHECK(
            cudaMemsetAsync(flush_.data(), i & 1 ? 0x5a : 0xa5, flush_.bytes(), stream_));
      }
      if (cupti_) {
        LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the flush is not in the sample
        CuptiKernelTimer::instance().begin_sample();
      }
      double event_ms = 0;
      {
        NvtxRange range("sample");
        event_ms = timed_run(instance, mode);
      }
      const double cupti_ms = cupti_ ? CuptiKernelTimer::instance().end_sample_ms()
                                     : std::numeric_limits<double>::quiet_NaN();
      double clock = 0;
      try {
        clock = gpu::current_sm_clock_mhz();
      } catch (const CudaError&) {
        clock = 0;  // unknown: never a reason to drop a sample
      }
      const bool throttled = config.throttle > 0 && clock > 0 && reference_clock_mhz_ > 0 &&
                             clock < config.throttle * reference_clock_mhz_;
      if (throttled) {
        ++t.discarded_throttled;
        t.discarded_clock_mhz.push_back(clock);
        std::this_thread::sleep_for(kThrottleRecovery);
      } else {
        t.event_samples_ms.push_back(event_ms);
        if (cupti_) t.cupti_samples_ms.push_back(cupti_ms);
        t.samples_ms.push_back(cupti_ && std::isfinite(cupti_ms) ? cupti_ms : event_ms);
        t.sm_clock_mhz.push_back(clock);
        if (on_sample) on_sample(static_cast<int>(t.samples_ms.size()));
      }
      const double wall = std::chrono::duration<double>(Clock::now() - start).count();
      t.stop_reason = rule.check(t.samples_ms, wall, interrupted.load());
      if (!t.stop_reason.empty()) break;
    }
    if (config.profile) cudaProfilerStop();
    t.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return t;
  }

 private:
  // One pass between two events; waits for it. Milliseconds.
  double timed_run(Instance& instance, Mode mode) {
    LIGHTNING_CUDA_CHECK(cudaEventRecord(start_.get(), stream_));
    instance.run(mode);
    LIGHTNING_CUDA_CHECK(cudaEventRecord(stop_.get(), stream_));
    LIGHTNING_CUDA_CHECK(cudaEventSynchronize(stop_.get()));
    float ms = 0;
    LIGHTNING_CUDA_CHECK(cudaEventElapsedTime(&ms, start_.get(), stop_.get()));
    return ms;
  }

  cudaStream_t stream_;
  double reference_clock_mhz_;
  gpu::DeviceBuffer flush_;  // tracked, but allocated before any point: never in a point's peak
  CudaEvent start_, stop_;
  bool cupti_ = false;
};

}  // namespace

std::unique_ptr<Engine> make_gpu_engine(cudaStream_t stream,
                                        const gpu::DeviceInfo& info,
                                        const Options& options,
                                        GpuEngineSetup* setup) {
  return std::make_unique<GpuEngine>(stream, info, options, setup);
}

}  // namespace lightning::bench
