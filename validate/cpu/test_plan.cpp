// The split of problems across thread blocks (kernels/src/plan.cpp).
#include <gtest/gtest.h>

#include <lightning/api.h>

#include "plan.h"

namespace lightning::detail {
namespace {

constexpr int kH200Sms = 132;

TEST(ForwardPlan, UsesNoSegmentsWhenHeadsAndSlicesFillTheGpu) {
  // The sweep at N = 1k: B = 128, H = 32 -> 8192 chains of (b, h, value slice).
  const ForwardPlan p = plan_forward(Shape{128, 32, 1024, 128, 128}, kH200Sms);
  EXPECT_EQ(p.segments, 1);
  EXPECT_EQ(p.value_splits, 2);
  EXPECT_EQ(p.workspace_bytes, 0u);
}

TEST(ForwardPlan, SplitsLongSequencesWhenBatchTimesHeadsIsSmall) {
  // The sweep at N = 128k: B = 1, H = 32 -> 64 chains for 264 thread-block slots (2 per SM):
  // segments fill one wave (no tail) to at least 90%.
  const Shape shape{1, 32, 131072, 128, 128};
  const ForwardPlan p = plan_forward(shape, kH200Sms);
  EXPECT_GT(p.segments, 1);
  EXPECT_LE(p.segments * 64, 2 * kH200Sms);
  EXPECT_GE(p.segments * 64 * 10, 2 * kH200Sms * 9);
  EXPECT_EQ(p.segment_len % p.block_n, 0);
  EXPECT_GE(p.segment_len * p.segments, shape.n);
  EXPECT_LT(p.segment_len * (p.segments - 1), shape.n);  // no empty segment
  // One fp32 D x E state per (b, h, segment): "a few states per (batch, head, segment)".
  EXPECT_EQ(p.workspace_bytes, static_cast<std::size_t>(32 * p.segments * 128 * 128 * 4));
}

TEST(ForwardPlan, UsesNoSegmentsWhileTheChainsFillOneWave) {
  // N = 32k: B = 4 -> 256 chains on 264 slots: one full wave already; segments would only add
  // the local-state pass. N = 64k: 128 chains, half the slots idle: two segments.
  EXPECT_EQ(plan_forward(Shape{4, 32, 32768, 128, 128}, kH200Sms).segments, 1);
  EXPECT_EQ(plan_forward(Shape{2, 32, 65536, 128, 128}, kH200Sms).segments, 2);
}

TEST(ForwardPlan, NeverMakesSegmentsShorterThanTheMinimum) {
  const ForwardPlan p = plan_forward(Shape{1, 1, 1500, 64, 64}, kH200Sms);
  EXPECT_EQ(p.segments, 1);  // 1500 tokens: one segment of at least 1024
  const ForwardPlan q = plan_forward(Shape{1, 1, 1, 64, 64}, kH200Sms);
  EXPECT_EQ(q.segments, 1);
  EXPECT_EQ(q.workspace_bytes, 0u);
}

TEST(ForwardPlan, HandlesRaggedLengthsWithoutEmptySegments) {
  for (std::int64_t n : {913, 4097, 65535, 131071, 1000003}) {
    const ForwardPlan p = plan_forward(Shape{1, 2, n, 64, 128}, kH200Sms);
    EXPECT_GE(p.segments, 1);
    EXPECT_GE(p.segment_len * p.segments, n) << n;
    EXPECT_LT(p.segment_len * (p.segments - 1), n) << n;
  }
}

}  // namespace
}  // namespace lightning::detail
