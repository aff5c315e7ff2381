// The C++ entry points: validate, plan, check the workspace, then hand over to the launchers
// (kernels/src/launch.cu), which exist only in a build with CUDA.
#include <string>
#include <vector>

#include <lightning/api.h>

#include "launch.h"
#include "plan.h"

#ifndef LIGHTNING_VERSION_STRING
#define LIGHTNING_VERSION_STRING "0.0.0"
#endif

namespace lightning {
namespace {

void check_workspace(void* workspace, std::size_t have, std::size_t need) {
  if (need == 0) return;
  if (workspace == nullptr) {
    throw InvalidArgument(LIGHTNING_ERROR_WORKSPACE,
                          "lightning: workspace is null but " + std::to_string(need) +
                              " bytes are required (query *_workspace_size)");
  }
  if (have < need) {
    throw InvalidArgument(LIGHTNING_ERROR_WORKSPACE, "lightning: workspace has " +
                                                         std::to_string(have) + " bytes, " +
                                                         std::to_string(need) + " are required");
  }
  if (reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0) {
    throw InvalidArgument(LIGHTNING_ERROR_MISALIGNED,
                          "lightning: workspace is not 256-byte aligned");
  }
}

}  // namespace

bool built_with_cuda() {
  return detail::kBuiltWithCuda;
}

const char* version() {
  return LIGHTNING_VERSION_STRING;
}

std::size_t forward_workspace_size(const lightning_fwd_params_t& params) {
  const Shape shape = validate(params);
  return detail::plan_forward(shape, detail::device_sm_count(), detail::kernel_kind(params.q.dtype))
      .workspace_bytes;
}

std::size_t backward_workspace_size(const lightning_bwd_params_t& params) {
  const Shape shape = validate(params);
  return detail::plan_backward(shape, detail::device_sm_count(),
                               detail::kernel_kind(params.q.dtype))
      .workspace_bytes;
}

void forward(const lightning_fwd_params_t& params, Stream stream) {
  const Shape shape = validate(params);
  if (!detail::kBuiltWithCuda) {
    throw NotBuilt("lightning: this build has no CUDA support (configured without nvcc)");
  }
  const detail::ForwardPlan plan =
      detail::plan_forward(shape, detail::device_sm_count(), detail::kernel_kind(params.q.dtype));
  check_workspace(params.workspace, params.workspace_bytes, plan.workspace_bytes);
  if (!(params.flags & LIGHTNING_FLAG_SKIP_SLOPE_CHECK)) {
    validate_slopes(detail::copy_slopes_to_host(params.s, shape.h, stream).data(), shape.h);
  }
  detail::launch_forward(params, shape, stream);
}

void backward(const lightning_bwd_params_t& params, Stream stream) {
  const Shape shape = validate(params);
  if (!detail::kBuiltWithCuda) {
    throw NotBuilt("lightning: this build has no CUDA support (configured without nvcc)");
  }
  const detail::ForwardPlan plan =
      detail::plan_backward(shape, detail::device_sm_count(), detail::kernel_kind(params.q.dtype));
  check_workspace(params.workspace, params.workspace_bytes, plan.workspace_bytes);
  if (!(params.flags & LIGHTNING_FLAG_SKIP_SLOPE_CHECK)) {
    validate_slopes(detail::copy_slopes_to_host(params.s, shape.h, stream).data(), shape.h);
  }
  detail::launch_backward(params, shape, stream);
}

}  // namespace lightning
