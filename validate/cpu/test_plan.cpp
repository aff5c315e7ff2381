// The split of problems across thread blocks (kernels/src/plan.cpp).
#include <gtest/gtest.h>

#include <lightning/api.h>

#include "plan.h"

namespace lightning::detail {
namespace {

constexpr int kH200Sms = 132;

constexpr KernelKind kTc = KernelKind::kTensorCore;

TEST(ForwardPlan, UsesNoSegmentsWhenHeadsFillTheGpu) {
  // The sweep at N = 1k: B = 128, H = 32 -> 4096 chains of (b, h), one thread block each with a
  // warpgroup per value slice; the fp32 kernel has a thread block per (b, h, value slice).
  const ForwardPlan p = plan_forward(Shape{128, 32, 1024, 128, 128}, kH200Sms, kTc);
  EXPECT_EQ(p.segments, 1);
  EXPECT_EQ(p.value_splits, 1);
  EXPECT_EQ(p.workspace_bytes, 0u);
  EXPECT_EQ(plan_forward(Shape{128, 32, 1024, 128, 128}, kH200Sms, KernelKind::kSimt).value_splits,
            2);
}

TEST(ForwardPlan, SplitsLongSequencesWhenBatchTimesHeadsIsSmall) {
  // The sweep at N = 128k: B = 1, H = 32 -> 32 chains for 132 thread-block slots (one block of
  // two warpgroups per SM at E = 128): segments fill one wave (no tail) to at least 90%.
  const Shape shape{1, 32, 131072, 128, 128};
  const ForwardPlan p = plan_forward(shape, kH200Sms, kTc);
  EXPECT_GT(p.segments, 1);
  EXPECT_LE(p.segments * 32, kH200Sms);
  EXPECT_GE(p.segments * 32 * 10, kH200Sms * 9);
  EXPECT_EQ(p.segment_len % p.block_n, 0);
  EXPECT_GE(p.segment_len * p.segments, shape.n);
  EXPECT_LT(p.segment_len * (p.segments - 1), shape.n);  // no empty segment
  // 96 local-state blocks would leave 36 of the 132 slots idle; 4 pieces per segment make 384
  // blocks, 97% of three waves. One fp32 D x E state per (b, h) and piece, plus one: "a few states
  // per (batch, head, segment)".
  EXPECT_EQ(p.local_pieces, 4);
  EXPECT_EQ(p.segment_len % (p.block_n * p.local_pieces), 0);
  EXPECT_EQ(p.workspace_bytes,
            static_cast<std::size_t>(32 * ((p.segments - 1) * p.local_pieces + 1) * 128 * 128 * 4));
}

TEST(ForwardPlan, CutsFewSegmentsIntoPiecesForTheLocalStatePass) {
  // N = 64k: 64 chains x 2 segments; the local-state pass would have 64 blocks for 132 slots:
  // two pieces per segment (128 blocks; four would fill two waves no better), segments a whole
  // number of pieces, 3 states per chain.
  const Shape shape{2, 32, 65536, 128, 128};
  const ForwardPlan p = plan_forward(shape, kH200Sms, kTc);
  EXPECT_EQ(p.segments, 2);
  EXPECT_EQ(p.local_pieces, 2);
  EXPECT_EQ(p.segment_len % (p.block_n * p.local_pieces), 0);
  EXPECT_GE(p.segment_len * p.segments, shape.n);
  EXPECT_EQ(p.workspace_bytes,
            static_cast<std::size_t>(64 * ((p.segments - 1) * p.local_pieces + 1) * 128 * 128 * 4));
}

TEST(ForwardPlan, KeepsOnePiecePerSegmentWhenTheLocalPassCoversEverySm) {
  // D = E = 64, H = 64, N = 128k: 64 chains x 3 local segments = 192 blocks (two fit per SM): every
  // one of the 132 SMs has a block, so no pieces (4 pieces measured 1% slower there).
  const ForwardPlan p = plan_forward(Shape{1, 64, 131072, 64, 64}, kH200Sms, kTc);
  ASSERT_GT(p.segments, 1);
  EXPECT_GE(64 * (p.segments - 1), kH200Sms);
  EXPECT_EQ(p.local_pieces, 1);
}

TEST(ForwardPlan, CountsTwoBlocksPerSmWhereTheSecondPays) {
  // D = E = 64: one warpgroup per thread block, two blocks per SM, both adding speed: 264 slots
  // for 32 chains.
  const ForwardPlan p = plan_forward(Shape{1, 32, 131072, 64, 64}, kH200Sms, kTc);
  EXPECT_LE(p.segments * 32, 2 * kH200Sms);
  EXPECT_GE(p.segments * 32 * 10, 2 * kH200Sms * 9);
}

TEST(ForwardPlan, CountsOneBlockPerSmAtD128E64) {
  // D = 128, E = 64: two blocks fit per SM, but the second adds almost nothing (measured: 32k
  // without segments 22% faster than with two), so the output pass counts 132 slots.
  EXPECT_EQ(plan_forward(Shape{4, 32, 32768, 128, 64}, kH200Sms, kTc).segments, 1);
  EXPECT_EQ(plan_forward(Shape{2, 32, 65536, 128, 64}, kH200Sms, kTc).segments, 2);
  const ForwardPlan p = plan_forward(Shape{1, 32, 131072, 128, 64}, kH200Sms, kTc);
  EXPECT_EQ(p.segments, 4);
  // The local-state pass is bound by memory and keeps two blocks per SM: its 96 blocks (3 local
  // segments x 32 chains) are cut in two pieces, 192 blocks for 264 slots.
  EXPECT_EQ(p.local_pieces, 2);
  // The backward's dV / dK pass (D, E) takes the same plan; its dQ pass (E = 128) its own.
  EXPECT_EQ(plan_backward(Shape{4, 32, 32768, 128, 64}, kH200Sms, kTc).segments, 1);
}

TEST(ForwardPlan, UsesNoSegmentsWhileTheChainsFillOneWave) {
  // N = 32k: B = 4 -> 128 chains on 132 slots: one full wave already; segments would only add
  // the local-state pass. N = 64k: 64 chains, half the slots idle: two segments.
  EXPECT_EQ(plan_forward(Shape{4, 32, 32768, 128, 128}, kH200Sms, kTc).segments, 1);
  EXPECT_EQ(plan_forward(Shape{2, 32, 65536, 128, 128}, kH200Sms, kTc).segments, 2);
}

TEST(ForwardPlan, NeverMakesSegmentsShorterThanTheMinimum) {
  const ForwardPlan p = plan_forward(Shape{1, 1, 1500, 64, 64}, kH200Sms, kTc);
  EXPECT_EQ(p.segments, 1);  // 1500 tokens: one segment of at least 1024
  const ForwardPlan q = plan_forward(Shape{1, 1, 1, 64, 64}, kH200Sms, kTc);
  EXPECT_EQ(q.segments, 1);
  EXPECT_EQ(q.workspace_bytes, 0u);
}

TEST(ForwardPlan, HandlesRaggedLengthsWithoutEmptySegments) {
  for (std::int64_t n : {913, 4097, 65535, 131071, 1000003}) {
    for (KernelKind kind : {kTc, KernelKind::kSimt}) {
      const ForwardPlan p = plan_forward(Shape{1, 2, n, 64, 128}, kH200Sms, kind);
      EXPECT_GE(p.segments, 1);
      EXPECT_GE(p.segment_len * p.segments, n) << n;
      EXPECT_LT(p.segment_len * (p.segments - 1), n) << n;
      EXPECT_EQ(p.segment_len % (p.block_n * p.local_pieces), 0) << n;
    }
  }
}

TEST(StatePieces, FillWholeWaves) {
  // One rank's shard in context parallelism, B = 1, H = 32, D = E = 128 (one local-state block
  // per SM): 4 pieces make 128 blocks, one wave 97% full, at 8k and 32k tokens alike (the rule
  // before took 9 pieces at 32k: 288 blocks, 2.2 waves).
  EXPECT_EQ(plan_state_pieces(Shape{1, 32, 32768, 128, 128}, kH200Sms, kTc, 100), 4);
  EXPECT_EQ(plan_state_pieces(Shape{1, 32, 8192, 128, 128}, kH200Sms, kTc, 100), 4);
  // Two local-state blocks fit per SM at E = 64: 8 pieces, 256 blocks.
  EXPECT_EQ(plan_state_pieces(Shape{1, 32, 32768, 128, 64}, kH200Sms, kTc, 100), 8);
  // The fp32 kernel has a chain per (b, h, 64-wide value slice): 64 chains, 2 pieces.
  EXPECT_EQ(plan_state_pieces(Shape{1, 32, 32768, 128, 128}, kH200Sms, KernelKind::kSimt, 100), 2);
  // Chains that fill the waves already: one piece.
  EXPECT_EQ(plan_state_pieces(Shape{128, 32, 1024, 128, 128}, kH200Sms, kTc, 100), 1);
}

TEST(StatePieces, StayWithinTheScratchAndTheBlocks) {
  const Shape shard{1, 32, 32768, 128, 128};
  EXPECT_EQ(plan_state_pieces(shard, kH200Sms, kTc, 0), 0);  // the scratch holds one state
  EXPECT_EQ(plan_state_pieces(shard, kH200Sms, kTc, 2), 2);
  // Few chains: as many pieces as the scratch allows (within 95% of the fullest waves), whole
  // 64-token blocks, none empty: 2 chains of 8142 tokens (128 blocks), 30 states: 26 pieces of 5
  // blocks, the last one short.
  const Shape few{1, 2, 8142, 128, 128};
  const std::int64_t pieces = plan_state_pieces(few, kH200Sms, kTc, 30);
  EXPECT_EQ(pieces, 26);
  // Never more pieces than blocks: 100 tokens are two blocks.
  EXPECT_EQ(plan_state_pieces(Shape{1, 1, 100, 64, 64}, kH200Sms, kTc, 50), 2);
  EXPECT_EQ(plan_state_pieces(Shape{1, 1, 1, 64, 64}, kH200Sms, kTc, 50), 1);
}

}  // namespace
}  // namespace lightning::detail
