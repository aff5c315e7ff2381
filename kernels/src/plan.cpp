// The split of a problem across thread blocks.
//
// Parallelism comes from (b, h) pairs, value slices (E / 64 thread blocks per head, each with a
// 64-wide slice of the state in registers) and, when those do not fill the GPU, sequence segments:
// a first kernel computes each segment's local state, a scan turns them into incoming states, and
// the main kernel starts each segment from its incoming state. Segments re-read K and V once, so
// they are used only when a small cost model (below) says the idle thread-block slots of the
// chains' last wave cost more than the extra traffic.
#include "plan.h"

#include <algorithm>

namespace lightning::detail {
namespace {

constexpr int kBlockN = 64;
constexpr int kValueSlice = 64;
// Thread blocks resident per SM (registers and shared memory allow two of the tensor-core kernel).
constexpr int kResidentPerSm = 2;
// Relative cost of the local-state pass (it re-reads K and V of every segment but the last) and
// the scan, per unit of tokens it covers: on the H200 the sweep (bf16, D = E = 128) took 3.5 ms
// at N = 16k with 8 segments against 2.4 ms at N = 8k without (first kernel version), i.e.
// 0.44 = kSegmentOverhead * 7/8.
constexpr double kSegmentOverhead = 0.5;
// Segments shorter than this spend more on their state traffic (a D x E fp32 state written, read
// and scanned per segment) than they gain in parallelism.
constexpr std::int64_t kMinSegmentLen = 1024;

// Modelled time of a plan with `segments` per chain, in units of one chain's whole pass: waves of
// resident thread blocks times the work of each, plus the overhead of segmenting.
double plan_cost(std::int64_t chains, std::int64_t segments, std::int64_t resident) {
  const std::int64_t blocks = chains * segments;
  const double waves = static_cast<double>((blocks + resident - 1) / resident);
  const double s = static_cast<double>(segments);
  return waves / s * (1.0 + kSegmentOverhead * (s - 1.0) / s);
}

ForwardPlan plan(const Shape& shape, int num_sms) {
  ForwardPlan p;
  p.block_n = kBlockN;
  p.value_splits = static_cast<int>((shape.e + kValueSlice - 1) / kValueSlice);
  const std::int64_t chains = shape.b * shape.h * p.value_splits;
  const std::int64_t resident = static_cast<std::int64_t>(std::max(num_sms, 1)) * kResidentPerSm;
  const std::int64_t max_segments = std::max<std::int64_t>(1, shape.n / kMinSegmentLen);
  // Only worth looking when the chains leave thread-block slots idle in their last wave.
  std::int64_t segments = 1;
  double best = plan_cost(chains, 1, resident);
  for (std::int64_t s = 2; s <= std::min<std::int64_t>(max_segments, 4 * resident); ++s) {
    const double cost = plan_cost(chains, s, resident);
    if (cost < best * 0.98) {  // a clear gain only: segments cost memory traffic
      best = cost;
      segments = s;
    }
  }
  // Segment length: a whole number of blocks, so segments never split a block.
  const std::int64_t blocks = (shape.n + kBlockN - 1) / kBlockN;
  const std::int64_t blocks_per_segment = (blocks + segments - 1) / segments;
  p.segment_len = blocks_per_segment * kBlockN;
  p.segments = (blocks + blocks_per_segment - 1) / blocks_per_segment;
  // One fp32 D x E state per (b, h, segment): local states, scanned in place into incoming ones.
  p.workspace_bytes =
      p.segments > 1
          ? static_cast<std::size_t>(shape.b * shape.h * p.segments * shape.d * shape.e) * 4
          : 0;
  return p;
}

}  // namespace

ForwardPlan plan_forward(const Shape& shape, int num_sms) {
  return plan(shape, num_sms);
}

// The backward runs three forward passes (kernels/README.md): dV over (D, E), dQ and dK over the
// transposed state (E, D), which may split differently. They share one workspace: the largest.
ForwardPlan plan_backward(const Shape& shape, int num_sms) {
  ForwardPlan p = plan(shape, num_sms);
  const ForwardPlan t = plan(Shape{shape.b, shape.h, shape.n, shape.e, shape.d}, num_sms);
  p.workspace_bytes = std::max(p.workspace_bytes, t.workspace_bytes);
  return p;
}

}  // namespace lightning::detail
