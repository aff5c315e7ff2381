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

struct FwdKernelParams;

int device_sm_count();
// The TMA tensor maps of a forward-direction tensor-core pass over kp's q, k, v and o views (set
// before); false (use cp.async) when the driver, LIGHTNING_NO_TMA or the views do not allow them.
// Also used by lightning-probe-chains.
bool encode_tma_maps(FwdKernelParams& kp, lightning_dtype_t dtype, const Shape& shape);
std::vector<float> copy_slopes_to_host(const float* s_device, std::int64_t h, Stream stream);
// The passes plan themselves (plan_forward per pass shape, as the workspace queries do).
void launch_forward(const lightning_fwd_params_t& params, const Shape& shape, Stream stream);
void launch_backward(const lightning_bwd_params_t& params, const Shape& shape, Stream stream);
// The backward's dV pass alone: params.dv (scratch here) and params.dinitial_state, the gradient
// of the state entering the sequence. Context parallelism's state-gradient contribution.
void launch_state_gradient(const lightning_bwd_params_t& params, const Shape& shape, Stream stream);
// The same two states as a forward's final state and launch_state_gradient's dinitial_state, from
// state-only passes (the local-state kernel over the whole sequence in pieces, the scan): K and V
// (Q and dO) read once, no outputs written. `scratch` (device memory, 16-byte aligned) holds the
// pieces' states (pieces + 1 per (b, h)); false, with nothing launched, when it cannot hold two.
bool launch_forward_state(const lightning_fwd_params_t& params,
                          const Shape& shape,
                          void* scratch,
                          std::size_t scratch_bytes,
                          Stream stream);
bool launch_state_gradient_state_only(const lightning_bwd_params_t& params,
                                      const Shape& shape,
                                      void* scratch,
                                      std::size_t scratch_bytes,
                                      Stream stream);
// Context parallelism's combine, one thread per element of a contiguous [B, H, D, E] state, with
// gathered[j * rank_stride + i] rank j's states: prefix (if not null) = sum over j < rank of
// lambda^((rank-1-j) shard_len) gathered[j * rank_stride + i]; suffix (if not null) the same over
// j > rank of gathered[j * rank_stride + suffix_offset + i], decayed by lambda^((j-rank-1)
// shard_len).
void launch_cp_combine(const float* s,
                       const Shape& shape,
                       const float* gathered,
                       std::int64_t rank_stride,
                       std::int64_t suffix_offset,
                       int rank,
                       int world,
                       std::int64_t shard_len,
                       float* prefix,
                       float* suffix,
                       Stream stream);

}  // namespace lightning::detail
