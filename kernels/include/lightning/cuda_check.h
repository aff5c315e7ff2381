// CUDA error checks for host code that includes the CUDA runtime (library internals, references,
// bench, tests). Throws lightning::CudaError ("file:line: cudaErrorName: message [expr]") or, for
// cudaErrorMemoryAllocation, lightning::OutOfMemory.
#pragma once

#include <string>

#include <cuda_runtime_api.h>

#include <lightning/errors.h>

namespace lightning::detail {

[[noreturn]] inline void throw_cuda_error(
    cudaError_t code, const char* expr, const char* file, int line, std::size_t bytes = 0) {
  std::string what = std::string(file) + ":" + std::to_string(line) + ": " +
                     cudaGetErrorName(code) + ": " + cudaGetErrorString(code) + " [" + expr + "]";
  if (code == cudaErrorMemoryAllocation) throw OutOfMemory(static_cast<int>(code), what, bytes);
  throw CudaError(static_cast<int>(code), what);
}

}  // namespace lightning::detail

#define LIGHTNING_CUDA_CHECK(expr)                                                         \
  do {                                                                                     \
    const cudaError_t lightning_status_ = (expr);                                          \
    if (lightning_status_ != cudaSuccess) {                                                \
      ::lightning::detail::throw_cuda_error(lightning_status_, #expr, __FILE__, __LINE__); \
    }                                                                                      \
  } while (0)

// After a launch: the launch error; with LIGHTNING_DEBUG_SYNC, the kernel's too.
#ifdef LIGHTNING_DEBUG_SYNC
#define LIGHTNING_CHECK_LAUNCH()                   \
  do {                                             \
    LIGHTNING_CUDA_CHECK(cudaGetLastError());      \
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define LIGHTNING_CHECK_LAUNCH() LIGHTNING_CUDA_CHECK(cudaGetLastError())
#endif
