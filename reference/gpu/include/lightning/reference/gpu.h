// lightning::ref::gpu: the GPU references, forward and backward, on the same params structs as the
// production API (strided views, bf16 / fp16 / fp32 storage, float32 arithmetic).
//
//   softmax_*    naive causal softmax attention, o = softmax(scale Q K^T + causal mask) V, with the
//                N x N scores / probabilities of every (b, h) materialised in float32 (cuBLAS
//                SGEMMs, no TF32). Scratch: 4 B * H * N^2 bytes forward, twice that backward (+
//                fp32 copies of the activations). Ignores s and the states: final_state and
//                dinitial_state are left untouched.
//   cumsum_*     linear attention with decay in the naive form the paper calls out: every token's
//                decayed prefix state S_t (D x E) is materialised, 4 B * H * N * D * E bytes, then
//                o_t = scale q_t S_t; the backward materialises S_t (for dQ), then dS_t (for dK,
//                dV) in the same scratch.
//   recurrent_*  the sequential recurrence, O(D * E) memory per head, no scratch: the long-sequence
//                oracle. Forward: one sweep. Backward: a forward sweep of S for dQ, and two reverse
//                sweeps of dS (by rows for dK and dS0, by columns for dV); no decay is ever
//                divided.
//
// The math is DESIGN.md section 1. The recurrences (recurrent_* and the scans of cumsum_*) keep the
// state in compensated float32 (an unevaluated sum hi + lo, error-free transformations) with
// lambda = exp(-s) as a float pair from a double exp: a plain float32 recurrence drifts from fp64
// by eps * sqrt(t) (and by t * 6e-8 through a rounded lambda), which fails DESIGN.md rules 1 and 2
// against the blocked float baseline from a few thousand tokens on. See detail::compensated_update.
//
// Every function validates its params first (lightning::validate; the values of s too, copied to
// the host, unless params.flags has LIGHTNING_FLAG_SKIP_SLOPE_CHECK) and throws
// lightning::InvalidArgument; CUDA failures throw lightning::CudaError; scratch comes from the
// TrackingAllocator, so a problem too large for the device throws lightning::OutOfMemory before
// any output is written and the process carries on. Functions with scratch synchronize `stream`
// before returning (the scratch is freed then); recurrent_* are asynchronous (except for the slope
// check).
#pragma once

#include <cstddef>

#include <cuda_runtime_api.h>

#include <lightning/lightning.h>

namespace lightning::ref::gpu {

void softmax_forward(const lightning_fwd_params_t& params, cudaStream_t stream = nullptr);
void softmax_backward(const lightning_bwd_params_t& params, cudaStream_t stream = nullptr);

void cumsum_forward(const lightning_fwd_params_t& params, cudaStream_t stream = nullptr);
void cumsum_backward(const lightning_bwd_params_t& params, cudaStream_t stream = nullptr);

void recurrent_forward(const lightning_fwd_params_t& params, cudaStream_t stream = nullptr);
void recurrent_backward(const lightning_bwd_params_t& params, cudaStream_t stream = nullptr);

// Device scratch bytes each call allocates (0 for the recurrences): for tools that want to know
// whether a point fits before trying it. Validate the params' shapes first.
std::size_t softmax_forward_scratch_bytes(const lightning_fwd_params_t& params);
std::size_t softmax_backward_scratch_bytes(const lightning_bwd_params_t& params);
std::size_t cumsum_forward_scratch_bytes(const lightning_fwd_params_t& params);
std::size_t cumsum_backward_scratch_bytes(const lightning_bwd_params_t& params);

}  // namespace lightning::ref::gpu
