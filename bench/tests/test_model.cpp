// The work model reproduces DESIGN.md section 4's figures.
#include <gtest/gtest.h>

#include "model.h"

namespace lightning::bench {
namespace {

TEST(Model, BytesPerTokenAndHeadMatchTheDesign) {
  EXPECT_EQ(bytes_per_token_head(Mode::kFwd, 128, 128, 2), 1024);
  EXPECT_EQ(bytes_per_token_head(Mode::kBwd, 128, 128, 2), 1792);
  EXPECT_EQ(bytes_per_token_head(Mode::kFwdBwd, 128, 128, 2), 2816);
  EXPECT_EQ(bytes_per_token_head(Mode::kFwd, 64, 128, 4), (2 * 64 + 2 * 128) * 4);
}

TEST(Model, ForwardFlopsAreFourBDPlusFourDSquared) {
  // DESIGN.md: ~4BD + 4D^2 = 98,304 per token per head at D = E = 128, block 64.
  EXPECT_EQ(flops_per_token_head(Family::kLinearBlocked, Mode::kFwd, 4096, 128, 128), 98304);
  EXPECT_EQ(flops_per_token_head(Family::kLinearBlocked, Mode::kBwd, 4096, 128, 128), 245760);
}

TEST(Model, TheStandardSweepMovesTheDesignsGigabytes) {
  // 131,072 tokens x 32 heads, bf16: forward 4.3 GB, backward 7.5 GB.
  const Work f = model_work(Family::kLinearBlocked, Mode::kFwd, 1, 32, 131072, 128, 128, 2);
  const Work b = model_work(Family::kLinearBlocked, Mode::kBwd, 128, 32, 1024, 128, 128, 2);
  EXPECT_NEAR(f.bytes / 1e9, 4.29, 0.01);
  EXPECT_NEAR(b.bytes / 1e9, 7.52, 0.01);
  EXPECT_EQ(f.tokens, 131072);
  EXPECT_EQ(b.tokens, 131072);
}

TEST(Model, SoftmaxFlopsGrowWithLengthAndLinearOnesDoNot) {
  const double s1 = flops_per_token_head(Family::kSoftmax, Mode::kFwd, 1024, 128, 128);
  const double s2 = flops_per_token_head(Family::kSoftmax, Mode::kFwd, 2047, 128, 128);
  EXPECT_NEAR(s2 / s1, 2048.0 / 1025.0, 1e-12);
  EXPECT_EQ(flops_per_token_head(Family::kLinearRecurrent, Mode::kFwd, 1024, 128, 128),
            flops_per_token_head(Family::kLinearRecurrent, Mode::kFwd, 131072, 128, 128));
}

}  // namespace
}  // namespace lightning::bench
