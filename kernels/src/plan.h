// How a problem is split across thread blocks: a host-side function with a CPU unit test.
#pragma once

#include <cstddef>
#include <cstdint>

#include <lightning/api.h>

namespace lightning::detail {

struct ForwardPlan {
  int block_n = 64;              // tokens per block of the blocked algorithm
  int value_splits = 1;          // thread blocks per (b, h, segment) along E
  std::int64_t segments = 1;     // sequence segments per (b, h); > 1 adds the state scan
  std::int64_t segment_len = 0;  // tokens per segment (a multiple of block_n), last one shorter
  // Pieces per segment in the local-state pass (segment_len is a multiple of block_n times this).
  std::int64_t local_pieces = 1;
  std::size_t workspace_bytes = 0;
};

// Which kernel runs: the tensor-core one (bf16, fp16: one thread block per (b, h, segment) with a
// warpgroup per 64-wide value slice) or the SIMT one (fp32: a thread block per value slice).
enum class KernelKind { kTensorCore, kSimt };
inline KernelKind kernel_kind(lightning_dtype_t dtype) {
  return dtype == LIGHTNING_FP32 ? KernelKind::kSimt : KernelKind::kTensorCore;
}

// The plan for these sizes on a GPU with `num_sms` multiprocessors.
ForwardPlan plan_forward(const Shape& shape, int num_sms, KernelKind kind);
// The backward's plan (its own splits; the same segment rule).
ForwardPlan plan_backward(const Shape& shape, int num_sms, KernelKind kind);

// Pieces of a state-only pass (context parallelism's phase 1, run_state_pass in launch.cu): the
// local-state kernel over each chain's whole sequence, cut into pieces of whole 64-token blocks.
// The pass is bound by memory, so its time follows how full its waves are: the fewest pieces
// whose waves are at least 95% as full as the fullest, at most `max_pieces` (the states the
// caller's scratch holds, less one), none empty. 0 when max_pieces < 1.
std::int64_t plan_state_pieces(const Shape& shape,
                               int num_sms,
                               KernelKind kind,
                               std::int64_t max_pieces);

}  // namespace lightning::detail
