// The launchers of a build without CUDA: every call says so.
#include "launch.h"

namespace lightning::detail {

namespace {
[[noreturn]] void not_built() {
  throw NotBuilt("lightning: this build has no CUDA support (configured without nvcc)");
}
}  // namespace

int device_sm_count() {
  return 132;
}  // the H200's, so workspace queries answer without a GPU

std::vector<float> copy_slopes_to_host(const float*, std::int64_t, Stream) {
  not_built();
}

void launch_forward(const lightning_fwd_params_t&, const Shape&, Stream) {
  not_built();
}

void launch_backward(const lightning_bwd_params_t&, const Shape&, Stream) {
  not_built();
}

void launch_state_gradient(const lightning_bwd_params_t&, const Shape&, Stream) {
  not_built();
}

bool launch_forward_state(const lightning_fwd_params_t&, const Shape&, void*, std::size_t, Stream) {
  not_built();
}

bool launch_state_gradient_state_only(
    const lightning_bwd_params_t&, const Shape&, void*, std::size_t, Stream) {
  not_built();
}

void launch_cp_combine(const float*,
                       const Shape&,
                       const float*,
                       std::int64_t,
                       std::int64_t,
                       int,
                       int,
                       std::int64_t,
                       float*,
                       float*,
                       Stream) {
  not_built();
}

}  // namespace lightning::detail
