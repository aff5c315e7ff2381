#include "cupti_timer.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include <cupti.h>

namespace lightning::bench {

namespace {

// Kernel records share kind, start and end across versions; CUDA 13's CUPTI writes version 10.
#if defined(CUPTI_API_VERSION) && CUPTI_API_VERSION >= 130000
using KernelRecord = CUpti_ActivityKernel10;
#else
using KernelRecord = CUpti_ActivityKernel9;
#endif

constexpr std::size_t kBufferBytes = 1 << 20;
constexpr std::size_t kAlign = 8;

void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size, std::size_t* max_records) {
  *buffer = static_cast<std::uint8_t*>(std::aligned_alloc(kAlign, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI
buffer_completed(CUcontext, std::uint32_t, std::uint8_t* buffer, std::size_t, std::size_t valid) {
  CUpti_Activity* record = nullptr;
  while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL ||
        record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const auto* k = reinterpret_cast<const KernelRecord*>(record);
      if (k->start != 0 || k->end != 0) CuptiKernelTimer::instance().add_interval(k->start, k->end);
    }
  }
  std::free(buffer);
}

std::string result_string(CUptiResult r) {
  const char* s = nullptr;
  cuptiGetResultString(r, &s);
  return s ? s : "unknown CUPTI error";
}

}  // namespace

CuptiKernelTimer& CuptiKernelTimer::instance() {
  static CuptiKernelTimer timer;
  return timer;
}

bool CuptiKernelTimer::enable(std::string* error) {
  if (enabled_) return true;
  CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (r == CUPTI_SUCCESS) r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  if (r != CUPTI_SUCCESS) {
    if (error) *error = "CUPTI activity tracing unavailable: " + result_string(r);
    return false;
  }
  enabled_ = true;
  return true;
}

void CuptiKernelTimer::add_interval(std::uint64_t start, std::uint64_t end) {
  std::lock_guard<std::mutex> lock(mutex_);
  intervals_.emplace_back(start, end);
}

void CuptiKernelTimer::begin_sample() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::uint64_t now = 0;
  cuptiGetTimestamp(&now);
  std::lock_guard<std::mutex> lock(mutex_);
  intervals_.clear();
  t0_ = now;
}

double CuptiKernelTimer::end_sample_ms() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> mine;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& iv : intervals_) {
      if (iv.first >= t0_ && iv.second >= iv.first) mine.push_back(iv);
    }
    intervals_.clear();
  }
  last_kernels_ = static_cast<int>(mine.size());
  if (mine.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(mine.begin(), mine.end());
  std::uint64_t busy = 0, cur_start = mine[0].first, cur_end = mine[0].second;
  for (std::size_t i = 1; i < mine.size(); ++i) {
    if (mine[i].first > cur_end) {
      busy += cur_end - cur_start;
      cur_start = mine[i].first;
      cur_end = mine[i].second;
    } else {
      cur_end = std::max(cur_end, mine[i].second);
    }
  }
  busy += cur_end - cur_start;
  return static_cast<double>(busy) / 1e6;
}

}  // namespace lightning::bench
