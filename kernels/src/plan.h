// How a problem is split across thread blocks: a host-side function with a CPU unit test.
#pragma once

#include <cstddef>
#include <cstdint>

#include <lightning/api.h>

namespace lightning::detail {

struct ForwardPlan {
  int block_n = 64;              // tokens per block of the blocked algorithm
  int value_splits = 1;          // thread blocks per (b, h) along E
  std::int64_t segments = 1;     // sequence segments per (b, h); > 1 adds the state scan
  std::int64_t segment_len = 0;  // tokens per segment (a multiple of block_n), last one shorter
  std::size_t workspace_bytes = 0;
};

// The plan for these sizes on a GPU with `num_sms` multiprocessors.
ForwardPlan plan_forward(const Shape& shape, int num_sms);
// The backward's plan (its own splits; the same segment rule).
ForwardPlan plan_backward(const Shape& shape, int num_sms);

}  // namespace lightning::detail
