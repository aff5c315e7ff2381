// lightning-bench: factories of the CUDA parts, shared by gpu_backend.cpp (host code only).
#pragma once

#include <memory>
#include <string>

#include <cuda_runtime_api.h>

#include <lightning/reference/device.h>

#include "engine.h"
#include "options.h"
#include "provider.h"

namespace lightning::bench {

// lightning, softmax-naive, cumsum-linear, recurrent on `stream`.
std::unique_ptr<Provider> make_gpu_provider(const std::string& name, cudaStream_t stream);

// CUDA events per sample, the L2 flush, SM clock sampling, and CUPTI when `timer` asks for it.
// `note` receives what the timer setup decided (e.g. CUPTI unavailable, events used).
struct GpuEngineSetup {
  std::size_t flush_bytes = 0;
  bool cupti = false;
  std::string note;
};
std::unique_ptr<Engine> make_gpu_engine(cudaStream_t stream,
                                        const gpu::DeviceInfo& info,
                                        const Options& options,
                                        GpuEngineSetup* setup);

// A view of one (b, h) head of an activation tensor: shape [1, 1, N, X], same strides.
lightning_tensor_t head_view(const lightning_tensor_t& t, std::int64_t b, std::int64_t h);

}  // namespace lightning::bench
