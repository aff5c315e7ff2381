// lightning-bench: the second timer. CUPTI activity records give each kernel's start and end on
// the GPU; a sample's time is the union of its kernels' execution intervals, so host-side gaps
// between launches (allocation, synchronization, launch latency) do not count. Host code only.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lightning::bench {

class CuptiKernelTimer {
 public:
  static CuptiKernelTimer& instance();

  // Enable kernel activity records (once per process). false, with the reason, when CUPTI
  // refuses (no permission, an older driver, another tool already owns CUPTI).
  bool enable(std::string* error);
  bool enabled() const { return enabled_; }

  // Forget every record so far and note the GPU timestamp: kernels starting from now count.
  void begin_sample();
  // Flush the records, return the union of the kernel intervals since begin_sample, in ms
  // (NaN when no kernel was recorded).
  double end_sample_ms();
  // Kernels seen in the last sample.
  int last_kernel_count() const { return last_kernels_; }

  void add_interval(std::uint64_t start, std::uint64_t end);

 private:
  CuptiKernelTimer() = default;
  std::mutex mutex_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> intervals_;
  std::uint64_t t0_ = 0;
  bool enabled_ = false;
  int last_kernels_ = 0;
};

}  // namespace lightning::bench
