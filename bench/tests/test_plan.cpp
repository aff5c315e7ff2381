// The sweep plan: B = tokens / N, the order of points, shuffled repeats.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "cli.h"
#include "plan.h"

namespace lightning::bench {
namespace {

Options small_options() {
  Options o;
  o.seqlens = parse_seqlens("1k..4k");
  o.tokens = 8192;
  o.providers = {"lightning", "softmax-naive"};
  o.modes = {Mode::kFwd, Mode::kBwd};
  return o;
}

TEST(Plan, FixesTheTokenBudget) {
  const auto plan = make_plan(small_options());
  ASSERT_EQ(plan.size(), 3u * 2 * 2);
  for (const auto& p : plan) EXPECT_EQ(p.b * p.n, 8192);
  EXPECT_EQ(plan.front().b, 8);
  EXPECT_EQ(plan.back().b, 2);
}

TEST(Plan, FloorsARaggedLengthsBatch) {
  Options o = small_options();
  o.seqlens = {913};
  EXPECT_EQ(batch_for(o, 913), 8);  // 8192 / 913 = 8.97
}

TEST(Plan, FixedBatchOverridesTheBudget) {
  Options o = small_options();
  o.batch = 3;
  for (const auto& p : make_plan(o)) EXPECT_EQ(p.b, 3);
}

TEST(Plan, RejectsALengthBeyondTheBudget) {
  Options o = small_options();
  o.seqlens = {16384};
  EXPECT_THROW(make_plan(o), BadArgument);
}

TEST(Plan, FirstRepeatRunsLengthsAscendingThenProvidersThenModes) {
  const auto plan = make_plan(small_options());
  EXPECT_TRUE(std::is_sorted(plan.begin(), plan.end(),
                             [](const Point& a, const Point& b) { return a.n < b.n; }));
  EXPECT_EQ(plan[0].provider, "lightning");
  EXPECT_EQ(plan[0].mode, Mode::kFwd);
  EXPECT_EQ(plan[1].mode, Mode::kBwd);
  EXPECT_EQ(plan[2].provider, "softmax-naive");
  for (std::size_t i = 0; i < plan.size(); ++i) EXPECT_EQ(plan[i].index, static_cast<int>(i));
}

TEST(Plan, RepeatsHoldTheSamePointsShuffledAndSeeded) {
  Options o = small_options();
  o.repeat = 3;
  const auto plan = make_plan(o);
  ASSERT_EQ(plan.size(), 36u);
  auto key = [](const Point& p) {
    return p.provider + "/" + mode_name(p.mode) + "/" + std::to_string(p.n);
  };
  std::multiset<std::string> first, third;
  bool shuffled = false;
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(plan[i].repeat, 0);
    EXPECT_EQ(plan[24 + i].repeat, 2);
    first.insert(key(plan[i]));
    third.insert(key(plan[24 + i]));
    shuffled = shuffled || key(plan[i]) != key(plan[24 + i]);
  }
  EXPECT_EQ(first, third);
  EXPECT_TRUE(shuffled);
  const auto again = make_plan(o);
  for (std::size_t i = 0; i < plan.size(); ++i) EXPECT_EQ(key(plan[i]), key(again[i]));
}

}  // namespace
}  // namespace lightning::bench
