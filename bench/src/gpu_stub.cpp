// The GPU backend of a build without CUDA: there is none, and it says why.
#include "gpu_backend.h"

namespace lightning::bench {

std::unique_ptr<GpuBackend> make_gpu_backend(const Options&, std::string* reason) {
  if (reason) *reason = "this build has no CUDA support (configured without nvcc)";
  return nullptr;
}

std::string list_devices_text() {
  return "no CUDA devices: this build has no CUDA support (configured without nvcc)\n";
}

}  // namespace lightning::bench
