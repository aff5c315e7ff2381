// The boundary between the host API and the CUDA launchers. In a build without CUDA the same
// functions exist (kernels/src/no_cuda.cpp) and throw NotBuilt; device_sm_count() returns the
// H200's 132 there (and in a CUDA build with no usable device) so that workspace queries still
// answer.
#pragma once

#include <cstdint>
#include <vector>

#include <lightning/api.h>

#include "plan.h"

namespace lightning::detail {

#ifdef LIGHTNING_WITH_CUDA
inline constexpr bool kBuiltWithCuda = true;
#else
inline constexpr bool kBuiltWithCuda = false;
#endif

int device_sm_count();
std::vector<float> copy_slopes_to_host(const float* s_device, std::int64_t h, Stream stream);
void launch_forward(const lightning_fwd_params_t& params,
                    const Shape& shape,
                    const ForwardPlan& plan,
                    Stream stream);
void launch_backward(const lightning_bwd_params_t& params,
                     const Shape& shape,
                     const ForwardPlan& plan,
                     Stream stream);

}  // namespace lightning::detail
