// The split of a problem across thread blocks.
//
// Parallelism comes from (b, h) pairs, value slices for the SIMT kernel (E / 64 thread blocks per
// head, each with a 64-wide slice of the state; the tensor-core kernel holds all slices of a head
// in one thread block, a warpgroup each) and, when those do not fill the GPU, sequence segments:
// a first kernel computes each segment's local state, a scan turns them into incoming states, and
// the main kernel starts each segment from its incoming state. Segments re-read K and V once, so
// they are used only when a small cost model (below) says the idle thread-block slots of the
// chains' last wave cost more than the extra traffic.
#include "plan.h"

#include <algorithm>
#include <cstdlib>

namespace lightning::detail {
namespace {

constexpr int kBlockN = 64;
constexpr int kValueSlice = 64;
// Relative cost of the local-state pass (it re-reads K and V of every segment but the last) and
// the scan, per unit of tokens it covers: on the H200 the sweep (bf16, D = E = 128) took 3.5 ms
// at N = 16k with 8 segments against 2.4 ms at N = 8k without (first kernel version), i.e.
// 0.44 = kSegmentOverhead * 7/8.
constexpr double kSegmentOverhead = 0.5;
// Segments shorter than this spend more on their state traffic (a D x E fp32 state written, read
// and scanned per segment) than they gain in parallelism.
constexpr std::int64_t kMinSegmentLen = 1024;
// The local-state pass has a thread block per (b, h, piece) over the segments but the last. It is
// memory-bound, so its time follows the slots it keeps busy: segments are cut into up to this
// many pieces (of at least kMinSegmentLen tokens) so that its waves are full. On the H200 (bf16,
// D = E = 128) at N = 64k, 64 x 2 segments: 64 blocks (1 piece) 82.5 Mtok/s, 128 (2) 94.1,
// 192 (3) 88.8, 256 (4) 93.4; at N = 128k, 32 x 4 segments: 96 blocks (1) 82.7, 192 (2) 80.8,
// 288 (3) 80.2, 384 (4) 85.5, 576 (6) 81.8: the fuller the last wave, the faster.
constexpr std::int64_t kMaxLocalPieces = 4;

// The fraction of `resident` slots that `blocks` thread blocks keep busy over their waves.
double wave_fill(std::int64_t blocks, std::int64_t resident) {
  const std::int64_t waves = (blocks + resident - 1) / resident;
  return static_cast<double>(blocks) / static_cast<double>(waves * resident);
}

// Modelled time of a plan with `segments` per chain, in units of one chain's whole pass: waves of
// resident thread blocks times the work of each, plus the overhead of segmenting.
double plan_cost(std::int64_t chains, std::int64_t segments, std::int64_t resident) {
  const std::int64_t blocks = chains * segments;
  const double waves = static_cast<double>((blocks + resident - 1) / resident);
  const double s = static_cast<double>(segments);
  return waves / s * (1.0 + kSegmentOverhead * (s - 1.0) / s);
}

// Thread blocks resident per SM (registers and shared memory): the tensor-core kernel fits two of
// one warpgroup (E = 64) or one of two (E = 128); the SIMT kernel's tiles take over half of it.
// The local-state pass, bound by memory, gains from every resident block.
int resident_per_sm(const Shape& shape, KernelKind kind) {
  return kind == KernelKind::kTensorCore && shape.e <= kValueSlice ? 2 : 1;
}

// Output-pass thread blocks per SM that add speed: what the segment choice counts as slots. At
// D = 128, E = 64 a second resident block adds almost none (its steps are bound by the SM, not
// by memory), so a chain per SM is a full wave and segments only add traffic; at D = E = 64 the
// second block pays. On the H200 (bf16, 131072 tokens, `scripts/plan-ab.sh`, Mtok/s, forward /
// backward): D = 128, E = 64, H = 32 at N = 32k (128 chains) 1 segment 159.3 / 56.8 against 2
// segments 131.1 / 48.2; 64k (64 chains) 2 segments 128.2 / 48.4 against 4: 118.5 / 44.4; 128k
// (32 chains) 4 segments 116.5 / 44.2 against 8: 114.1 / 43.2. D = E = 64, H = 64 at 128k
// (64 chains): 4 segments (two blocks per SM) 92.1 / 38.0 against 2 (one per SM) 82.9 / 32.5.
int useful_per_sm(const Shape& shape, KernelKind kind) {
  return kind == KernelKind::kTensorCore && shape.e <= kValueSlice && shape.d <= 64 ? 2 : 1;
}

// `forced` > 0: that many segments per chain (at most one per kMinSegmentLen tokens) instead of the
// cost model's choice; the pieces follow the usual rule.
ForwardPlan plan(const Shape& shape, int num_sms, KernelKind kind, std::int64_t forced) {
  ForwardPlan p;
  p.block_n = kBlockN;
  p.value_splits = kind == KernelKind::kTensorCore
                       ? 1
                       : static_cast<int>((shape.e + kValueSlice - 1) / kValueSlice);
  const std::int64_t chains = shape.b * shape.h * p.value_splits;
  const std::int64_t sms = std::max(num_sms, 1);
  const std::int64_t resident = sms * resident_per_sm(shape, kind);  // the local-state pass's
  const std::int64_t out_slots = sms * useful_per_sm(shape, kind);   // the output pass's
  const std::int64_t max_segments = std::max<std::int64_t>(1, shape.n / kMinSegmentLen);
  // Only worth looking when the chains leave thread-block slots idle in their last wave.
  std::int64_t segments = 1;
  double best = plan_cost(chains, 1, out_slots);
  for (std::int64_t s = 2; s <= std::min<std::int64_t>(max_segments, 4 * out_slots); ++s) {
    const double cost = plan_cost(chains, s, out_slots);
    if (cost < best * 0.98) {  // a clear gain only: segments cost memory traffic
      best = cost;
      segments = s;
    }
  }
  if (forced > 0) segments = std::min(forced, max_segments);
  // Segment length: a whole number of blocks, so segments never split a block (nor pieces).
  const std::int64_t blocks = (shape.n + kBlockN - 1) / kBlockN;
  std::int64_t blocks_per_segment = (blocks + segments - 1) / segments;
  std::int64_t pieces = 1;
  if (segments > 1) {
    // Only when one piece per segment leaves SMs without a block: then the fewest pieces that fill
    // the waves best, more only for a clearly fuller wave (each adds a state to write and scan).
    // With two blocks per SM, 192 blocks on 132 SMs already keep every SM busy: cutting them into
    // 4 pieces measured 1% slower (D = E = 64, H = 64, N = 128k).
    const std::int64_t local_blocks = chains * (segments - 1);
    const std::int64_t max_pieces =
        local_blocks >= num_sms
            ? 1
            : std::min(kMaxLocalPieces,
                       std::max<std::int64_t>(1, blocks_per_segment * kBlockN / kMinSegmentLen));
    double fill = wave_fill(local_blocks, resident);
    for (std::int64_t c = 2; c <= max_pieces; ++c) {
      const double f = wave_fill(local_blocks * c, resident);
      if (f > fill + 0.05) {
        fill = f;
        pieces = c;
      }
    }
    blocks_per_segment = (blocks_per_segment + pieces - 1) / pieces * pieces;
  }
  p.segment_len = blocks_per_segment * kBlockN;
  p.segments = (blocks + blocks_per_segment - 1) / blocks_per_segment;
  p.local_pieces = p.segments > 1 ? pieces : 1;
  // One fp32 D x E state per (b, h) and piece of the segments but the last, plus one: the local
  // states, scanned in place into the segments' incoming states.
  const std::int64_t slots = (p.segments - 1) * p.local_pieces + 1;
  p.workspace_bytes =
      p.segments > 1 ? static_cast<std::size_t>(shape.b * shape.h * slots * shape.d * shape.e) * 4
                     : 0;
  return p;
}

// LIGHTNING_SEGMENTS=n (n >= 1) in the environment forces n segments per chain: the A/B switch
// for measuring the cost model's choices (scripts/plan-ab.sh). Anything else: the model decides.
std::int64_t forced_segments() {
  static const std::int64_t n = [] {
    const char* env = std::getenv("LIGHTNING_SEGMENTS");
    if (env == nullptr) return std::int64_t{0};
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    return end != env && *end == '\0' && v >= 1 ? static_cast<std::int64_t>(v) : std::int64_t{0};
  }();
  return n;
}

}  // namespace

std::int64_t plan_state_pieces(const Shape& shape,
                               int num_sms,
                               KernelKind kind,
                               std::int64_t max_pieces) {
  if (max_pieces < 1) return 0;
  const std::int64_t splits =
      kind == KernelKind::kTensorCore ? 1 : (shape.e + kValueSlice - 1) / kValueSlice;
  const std::int64_t chains = std::max<std::int64_t>(1, shape.b * shape.h * splits);
  const std::int64_t resident =
      static_cast<std::int64_t>(std::max(num_sms, 1)) * resident_per_sm(shape, kind);
  const std::int64_t blocks = std::max<std::int64_t>(1, (shape.n + kBlockN - 1) / kBlockN);
  const std::int64_t limit =
      std::min({max_pieces, blocks, std::max<std::int64_t>(1, 4 * resident / chains)});
  double best = 0;
  for (std::int64_t c = 1; c <= limit; ++c) best = std::max(best, wave_fill(chains * c, resident));
  std::int64_t pieces = 1;
  while (pieces < limit && wave_fill(chains * pieces, resident) < 0.95 * best) ++pieces;
  const std::int64_t per_piece = (blocks + pieces - 1) / pieces;
  return (blocks + per_piece - 1) / per_piece;  // whole blocks, none of the pieces empty
}

ForwardPlan plan_forward(const Shape& shape, int num_sms, KernelKind kind) {
  return plan(shape, num_sms, kind, forced_segments());
}

// The backward runs three forward passes (kernels/README.md): dV over (D, E), dQ and dK over the
// transposed state (E, D), which may split differently. They share one workspace: the largest.
ForwardPlan plan_backward(const Shape& shape, int num_sms, KernelKind kind) {
  ForwardPlan p = plan(shape, num_sms, kind, forced_segments());
  const ForwardPlan t =
      plan(Shape{shape.b, shape.h, shape.n, shape.e, shape.d}, num_sms, kind, forced_segments());
  p.workspace_bytes = std::max(p.workspace_bytes, t.workspace_bytes);
  return p;
}

}  // namespace lightning::detail
