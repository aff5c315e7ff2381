// NVTX v3 ranges (header-only, CUDA::nvtx3) around points and phases, so Nsight Systems users find
// them by name; nothing in a build without CUDA.
#pragma once

#include <string>

#ifdef LIGHTNING_BENCH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace lightning::bench {

class NvtxRange {
 public:
#ifdef LIGHTNING_BENCH_CUDA
  explicit NvtxRange(const std::string& name) {
    nvtxRangePushA(name.c_str());
  }
  ~NvtxRange() {
    nvtxRangePop();
  }
#else
  explicit NvtxRange(const std::string&) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace lightning::bench
