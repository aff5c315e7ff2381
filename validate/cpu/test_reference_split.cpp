// The property sequence-parallel kernels rely on: a sequence split in two at token m, the first
// half's final state passed as the second half's initial state, reproduces the whole sequence's
// outputs and final state; and backward, the second half's initial-state gradient passed as the
// first half's final-state gradient reproduces the whole sequence's gradients, dS0 included.
// Float64, 1e-10 relative, every linear form, splits at a block boundary and at ragged points.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <lightning/reference/cpu.h>

namespace lightning::ref {
namespace {

constexpr double kAgree = 1e-10;

// max|got - want| / max|want|; infinite when the sizes differ or there is nothing to compare.
double max_rel_diff(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size() || want.empty()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    diff = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(diff, d);
    scale = std::max(scale, std::fabs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

enum class Kind { kRecurrent, kQuadratic, kBlocked };

struct Form {
  const char* name;
  Kind kind;
  int block = 0;
};

void PrintTo(const Form& form, std::ostream* os) {
  *os << form.name;
}

Forward<double> run_forward(const Form& form, const Problem<double>& p) {
  switch (form.kind) {
    case Kind::kRecurrent:
      return recurrent_forward(p);
    case Kind::kQuadratic:
      return quadratic_forward(p);
    case Kind::kBlocked:
      return blocked_forward(p, form.block);
  }
  return {};
}

Gradients<double> run_backward(const Form& form,
                               const Problem<double>& p,
                               const std::vector<double>& dout,
                               const std::vector<double>& dfinal_state) {
  switch (form.kind) {
    case Kind::kRecurrent:
      return recurrent_backward(p, dout, dfinal_state);
    case Kind::kQuadratic:
      return quadratic_backward(p, dout, dfinal_state);
    case Kind::kBlocked:
      return blocked_backward(p, dout, dfinal_state, form.block);
  }
  return {};
}

struct SplitCase {
  const char* name;
  std::int64_t b, h, n, d, e;
  std::int64_t split;  // the second half starts at token `split`
  std::vector<double> s;
  bool with_initial_state;
  bool with_dfinal_state;
  std::uint64_t seed;
};

void PrintTo(const SplitCase& c, std::ostream* os) {
  *os << c.name;
}

// Block sizes of the forms below: 64 and 16. 128 is a boundary of both; 77, 1, 500 of neither.
const std::vector<SplitCase> kSplitCases = {
    {"AtBlockBoundary128Of200", 2, 2, 200, 16, 32, 128, {0.0, 2.0}, true, true, 601},
    {"AtRaggedPoint77Of200", 2, 2, 200, 16, 32, 77, {0.0, 2.0}, true, true, 602},
    {"AfterTheFirstToken", 1, 2, 50, 8, 8, 1, alibi_slopes(2), true, true, 603},
    {"BeforeTheLastTokenNoStates", 1, 2, 70, 8, 16, 69, {0.0, 0.5}, false, false, 604},
    {"Ragged500Of913NoInitialState", 1, 2, 913, 8, 8, 500, {0.0, 2.0}, false, true, 605},
    {"AtBlockBoundary64D64E128", 1, 2, 150, 64, 128, 64, alibi_slopes(2), true, false, 606},
};

const std::vector<Form> kSplitForms = {
    {"Recurrent", Kind::kRecurrent},
    {"Quadratic", Kind::kQuadratic},
    {"Blocked64", Kind::kBlocked, 64},
    {"Blocked16", Kind::kBlocked, 16},
};

class CpuReferenceSplit : public testing::TestWithParam<std::tuple<Form, SplitCase>> {};

TEST_P(CpuReferenceSplit, TwoHalvesReproduceTheWholeSequenceForwardAndBackward) {
  const auto& [form, c] = GetParam();
  ASSERT_GT(c.split, 0);
  ASSERT_LT(c.split, c.n);
  const Problem<double> whole_p =
      random_problem<double>(c.b, c.h, c.n, c.d, c.e, c.s, c.with_initial_state, c.seed);
  const std::int64_t bh = c.b * c.h;
  const std::vector<double> dout = random_uniform<double>(whole_p.v.size(), c.seed + 1000);
  const std::vector<double> dfinal =
      c.with_dfinal_state
          ? random_uniform<double>(static_cast<std::size_t>(bh * c.d * c.e), c.seed + 2000)
          : std::vector<double>{};

  const Forward<double> whole = run_forward(form, whole_p);
  const Gradients<double> whole_grad = run_backward(form, whole_p, dout, dfinal);

  // Forward: first half from the problem's own initial state, second half from its final state.
  const Problem<double> first_p = slice_problem(whole_p, 0, c.split, whole_p.initial_state);
  const Forward<double> first = run_forward(form, first_p);
  const Problem<double> second_p = slice_problem(whole_p, c.split, c.n, first.final_state);
  const Forward<double> second = run_forward(form, second_p);

  auto rows = [&](const std::vector<double>& x, std::int64_t width, std::int64_t begin,
                  std::int64_t end) { return slice_rows(x, bh, c.n, width, begin, end); };
  EXPECT_LE(max_rel_diff(first.o, rows(whole.o, c.e, 0, c.split)), kAgree) << "o, first half";
  EXPECT_LE(max_rel_diff(second.o, rows(whole.o, c.e, c.split, c.n)), kAgree) << "o, second half";
  EXPECT_LE(max_rel_diff(second.final_state, whole.final_state), kAgree) << "final state";

  // Backward: second half first, its initial-state gradient is the first half's final-state one.
  const Gradients<double> second_grad =
      run_backward(form, second_p, rows(dout, c.e, c.split, c.n), dfinal);
  const Gradients<double> first_grad =
      run_backward(form, first_p, rows(dout, c.e, 0, c.split), second_grad.dinitial_state);
  EXPECT_LE(max_rel_diff(first_grad.dq, rows(whole_grad.dq, c.d, 0, c.split)), kAgree) << "dq 1";
  EXPECT_LE(max_rel_diff(first_grad.dk, rows(whole_grad.dk, c.d, 0, c.split)), kAgree) << "dk 1";
  EXPECT_LE(max_rel_diff(first_grad.dv, rows(whole_grad.dv, c.e, 0, c.split)), kAgree) << "dv 1";
  EXPECT_LE(max_rel_diff(second_grad.dq, rows(whole_grad.dq, c.d, c.split, c.n)), kAgree) << "dq 2";
  EXPECT_LE(max_rel_diff(second_grad.dk, rows(whole_grad.dk, c.d, c.split, c.n)), kAgree) << "dk 2";
  EXPECT_LE(max_rel_diff(second_grad.dv, rows(whole_grad.dv, c.e, c.split, c.n)), kAgree) << "dv 2";
  EXPECT_LE(max_rel_diff(first_grad.dinitial_state, whole_grad.dinitial_state), kAgree) << "dS0";
}

std::string form_and_case_name(
    const testing::TestParamInfo<std::tuple<Form, SplitCase>>& param_info) {
  return std::string(std::get<0>(param_info.param).name) + "_" + std::get<1>(param_info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Splits,
                         CpuReferenceSplit,
                         testing::Combine(testing::ValuesIn(kSplitForms),
                                          testing::ValuesIn(kSplitCases)),
                         form_and_case_name);

}  // namespace
}  // namespace lightning::ref
