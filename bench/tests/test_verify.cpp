// Verification end to end on the CPU providers: they pass rules 1 and 2 against the float64
// reference, and a perturbed output fails.
#include <set>

#include <gtest/gtest.h>

#include "cli.h"
#include "provider.h"
#include "verify.h"

namespace lightning::bench {
namespace {

TEST(ChooseHeads, TakesBothCornersThenDistinctSeededOnes) {
  const auto heads = choose_heads(4, 8, 5, 42);
  ASSERT_EQ(heads.size(), 5u);
  EXPECT_EQ(heads[0], (std::array<std::int64_t, 2>{0, 0}));
  EXPECT_EQ(heads[1], (std::array<std::int64_t, 2>{3, 7}));
  std::set<std::array<std::int64_t, 2>> distinct(heads.begin(), heads.end());
  EXPECT_EQ(distinct.size(), 5u);
  EXPECT_EQ(choose_heads(4, 8, 5, 42), heads);
  EXPECT_EQ(choose_heads(2, 2, 0, 1).size(), 4u);  // 0: all
  EXPECT_EQ(choose_heads(1, 1, 2, 1).size(), 1u);
}

ProblemSpec spec(std::int64_t n) {
  ProblemSpec s;
  s.b = 2;
  s.h = 2;
  s.n = n;
  s.d = 64;
  s.e = 64;
  s.dtype = DType::kBF16;
  s.slopes = slopes_for("alibi", 2);
  s.seed = seed_for_length(1, n);
  return s;
}

class VerifyCpu : public ::testing::TestWithParam<std::tuple<const char*, Mode, std::int64_t>> {};

TEST_P(VerifyCpu, ProvidersPassAgainstTheFloat64Reference) {
  const auto [name, mode, n] = GetParam();
  Options o;
  o.verify_heads = 0;
  Verifier verifier(o);
  auto provider = make_cpu_provider(name);
  ASSERT_TRUE(provider);
  auto instance = provider->prepare(spec(n), mode);
  instance->run(mode);
  const auto v = verifier.verify(*instance, spec(n), provider->info().family, mode);
  EXPECT_EQ(v.status, "passed") << v.message;
  EXPECT_EQ(v.heads.size(), 4u);
  EXPECT_EQ(v.tensors.size(), mode == Mode::kFwd ? 1u : mode == Mode::kBwd ? 3u : 4u);
}

INSTANTIATE_TEST_SUITE_P(
    ShapesAndModes,
    VerifyCpu,
    ::testing::Values(std::make_tuple("cpu-lightning", Mode::kFwd, std::int64_t{1}),
                      std::make_tuple("cpu-lightning", Mode::kFwdBwd, std::int64_t{913}),
                      std::make_tuple("cpu-lightning", Mode::kBwd, std::int64_t{100}),
                      std::make_tuple("cpu-softmax", Mode::kFwdBwd, std::int64_t{300})));

// Delegates to a real instance and adds an error to o.
class Perturbed final : public Instance {
 public:
  explicit Perturbed(std::unique_ptr<Instance> inner) : inner_(std::move(inner)) {}
  void run(Mode mode) override { inner_->run(mode); }
  HeadInputs read_inputs(std::int64_t b, std::int64_t h) override {
    return inner_->read_inputs(b, h);
  }
  HeadOutputs read_outputs(std::int64_t b, std::int64_t h, Mode mode) override {
    auto out = inner_->read_outputs(b, h, mode);
    out.o[out.o.size() / 2] += 1000;  // far beyond any rounding slack
    return out;
  }
  const char* input_source() const override { return inner_->input_source(); }

 private:
  std::unique_ptr<Instance> inner_;
};

TEST(VerifyCpu, AWrongOutputFailsNamingTheTensorAndCoordinate) {
  Options o;
  Verifier verifier(o);
  auto provider = make_cpu_provider("cpu-lightning");
  Perturbed instance(provider->prepare(spec(256), Mode::kFwd));
  instance.run(Mode::kFwd);
  const auto v = verifier.verify(instance, spec(256), Family::kLinearBlocked, Mode::kFwd);
  EXPECT_EQ(v.status, "failed");
  EXPECT_NE(v.message.find("o: FAIL"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("[0,"), std::string::npos) << v.message;
}

TEST(VerifyCpu, OverBudgetSoftmaxIsSkippedNotFailed) {
  Options o;
  o.verify_budget_gflop = 1e-6;
  Verifier verifier(o);
  auto provider = make_cpu_provider("cpu-softmax");
  auto instance = provider->prepare(spec(128), Mode::kFwd);
  instance->run(Mode::kFwd);
  const auto v = verifier.verify(*instance, spec(128), Family::kSoftmax, Mode::kFwd);
  EXPECT_EQ(v.status, "skipped");
  EXPECT_NE(v.message.find("--verify-budget"), std::string::npos) << v.message;
}

}  // namespace
}  // namespace lightning::bench
