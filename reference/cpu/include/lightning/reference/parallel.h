// A small parallel_for for the CPU references: the (b, h) pairs are independent, so each worker
// takes the next index from a shared counter until none is left. Threads are started per call:
// one reference call does milliseconds to seconds of work, against tens of microseconds to start
// a thread, so a pool would buy nothing measurable.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lightning::ref {

// Calls f(i) for i in [0, count), on up to hardware_concurrency threads (the calling thread is
// one of them). The first exception thrown by any call is rethrown here once all have stopped.
template <class F>
void parallel_for(std::int64_t count, F&& f) {
  if (count <= 0) return;
  const std::int64_t hw = std::max(1u, std::thread::hardware_concurrency());
  const std::int64_t workers = std::min(hw, count);
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (std::int64_t i = next++; i < count; i = next++) {
      try {
        f(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = count;  // stop handing out work
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers - 1));
  for (std::int64_t t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace lightning::ref
