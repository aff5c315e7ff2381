// DESIGN.md section 5 rule 3, second half: every backward of the CPU references passes central
// finite differences of its own forward, eps = 1e-6, |analytic - numeric| <= 1e-5 + 1e-3 |numeric|,
// on the scalar loss L = <dout, o> + <dS_final, final state> (softmax: L = <dout, o>):
//   - the full Jacobian of L (every element of q, k, v and the initial state) on tiny shapes;
//   - random directional derivatives over all inputs at once on larger shapes with several blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <lightning/reference/cpu.h>

namespace lightning::ref {
namespace {

constexpr double kEps = 1e-6;
constexpr double kAbsTol = 1e-5;
constexpr double kRelTol = 1e-3;

enum class Kind { kRecurrent, kQuadratic, kBlocked, kSoftmax };

struct Form {
  const char* name;
  Kind kind;
  int block = 0;  // kBlocked only
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
    case Kind::kSoftmax:
      return softmax_forward(p);
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
    case Kind::kSoftmax:
      return softmax_backward(p, dout);
  }
  return {};
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

struct GradCase {
  const char* name;
  std::int64_t b, h, n, d, e;
  std::vector<double> s;
  bool with_initial_state;
  bool with_dfinal_state;
  std::uint64_t seed;
};

void PrintTo(const GradCase& c, std::ostream* os) {
  *os << c.name;
}

struct LossInputs {
  Problem<double> p;
  std::vector<double> dout, dfinal_state;
};

LossInputs make_setup(const Form& form, const GradCase& c) {
  LossInputs x;
  // Softmax has no states: it takes neither an initial state nor a final-state gradient.
  const bool softmax = form.kind == Kind::kSoftmax;
  x.p = random_problem<double>(c.b, c.h, c.n, c.d, c.e, c.s, c.with_initial_state && !softmax,
                               c.seed);
  x.p.scale = 0.75;  // not 1 and not 1/sqrt(d): a missing or doubled scale shows
  x.dout = random_uniform<double>(x.p.v.size(), c.seed + 1000);
  if (c.with_dfinal_state && !softmax) {
    x.dfinal_state =
        random_uniform<double>(static_cast<std::size_t>(c.b * c.h * c.d * c.e), c.seed + 2000);
  }
  return x;
}

double loss(const Form& form, const LossInputs& x, const Problem<double>& p) {
  const Forward<double> f = run_forward(form, p);
  double l = dot(x.dout, f.o);
  if (!x.dfinal_state.empty()) l += dot(x.dfinal_state, f.final_state);
  return l;
}

// The differentiable inputs of a problem and the matching gradients, in one order.
std::vector<std::vector<double>*> inputs(Problem<double>& p) {
  return {&p.q, &p.k, &p.v, &p.initial_state};
}
std::vector<const std::vector<double>*> gradients(const Gradients<double>& g) {
  return {&g.dq, &g.dk, &g.dv, &g.dinitial_state};
}
constexpr const char* kInputNames[] = {"q", "k", "v", "initial_state"};

bool within_tolerance(double analytic, double numeric) {
  return std::fabs(analytic - numeric) <= kAbsTol + kRelTol * std::fabs(numeric);
}

std::string form_and_case_name(
    const testing::TestParamInfo<std::tuple<Form, GradCase>>& param_info) {
  return std::string(std::get<0>(param_info.param).name) + "_" + std::get<1>(param_info.param).name;
}

// -------------------------------------------------------------------------------------------------
// Full Jacobian on tiny shapes.

class CpuReferenceGradientsFull : public testing::TestWithParam<std::tuple<Form, GradCase>> {};

TEST_P(CpuReferenceGradientsFull, MatchCentralDifferencesOnEveryInputElement) {
  const auto& [form, c] = GetParam();
  const LossInputs x = make_setup(form, c);
  const Gradients<double> g = run_backward(form, x.p, x.dout, x.dfinal_state);
  Problem<double> p = x.p;
  const auto ins = inputs(p);
  const auto grads = gradients(g);
  std::int64_t checked = 0, failed = 0;
  for (std::size_t t = 0; t < ins.size(); ++t) {
    std::vector<double>& in = *ins[t];
    if (in.empty()) continue;  // no initial state (or softmax)
    ASSERT_EQ(grads[t]->size(), in.size()) << kInputNames[t];
    for (std::size_t j = 0; j < in.size(); ++j) {
      const double saved = in[j];
      in[j] = saved + kEps;
      const double plus = loss(form, x, p);
      in[j] = saved - kEps;
      const double minus = loss(form, x, p);
      in[j] = saved;
      const double numeric = (plus - minus) / (2 * kEps);
      const double analytic = (*grads[t])[j];
      ++checked;
      if (!within_tolerance(analytic, numeric) && ++failed <= 5) {
        ADD_FAILURE() << kInputNames[t] << "[" << j << "]: analytic " << analytic << " numeric "
                      << numeric;
      }
    }
  }
  EXPECT_EQ(failed, 0) << "of " << checked << " elements";
  const std::int64_t want =
      c.b * c.h * c.n * (2 * c.d + c.e) + (!x.p.initial_state.empty() ? c.b * c.h * c.d * c.e : 0);
  EXPECT_EQ(checked, want);
}

// N = 5 gives blocks of 2 + 2 + 1 (block 2), 3 + 2 (block 3) and one short block (block 16).
const std::vector<Form> kTinyForms = {
    {"Recurrent", Kind::kRecurrent},   {"Quadratic", Kind::kQuadratic},
    {"Blocked2", Kind::kBlocked, 2},   {"Blocked3", Kind::kBlocked, 3},
    {"Blocked16", Kind::kBlocked, 16}, {"Softmax", Kind::kSoftmax},
};

const std::vector<GradCase> kTinyCases = {
    {"N5NoDecayAndStrongDecay", 1, 2, 5, 4, 4, {0.0, 2.0}, true, true, 401},
    {"N7D3E5NoFinalGradient", 2, 1, 7, 3, 5, {0.5}, true, false, 402},
    {"N6NoInitialState", 1, 2, 6, 4, 3, {2.0, 0.0}, false, true, 403},
    {"SingleToken", 1, 1, 1, 2, 3, {2.0}, true, true, 404},
};

INSTANTIATE_TEST_SUITE_P(Tiny,
                         CpuReferenceGradientsFull,
                         testing::Combine(testing::ValuesIn(kTinyForms),
                                          testing::ValuesIn(kTinyCases)),
                         form_and_case_name);

// -------------------------------------------------------------------------------------------------
// Random directional derivatives on larger shapes: dL(x + eps u)/d eps against <grad, u>, with u
// uniform in [-1, 1) over every input element (q, k, v and the initial state together).

class CpuReferenceGradientsDirectional : public testing::TestWithParam<std::tuple<Form, GradCase>> {
};

TEST_P(CpuReferenceGradientsDirectional, MatchCentralDifferencesAlongRandomDirections) {
  constexpr int kDirections = 4;
  const auto& [form, c] = GetParam();
  const LossInputs x = make_setup(form, c);
  const Gradients<double> g = run_backward(form, x.p, x.dout, x.dfinal_state);
  const auto grads = gradients(g);
  for (int dir = 0; dir < kDirections; ++dir) {
    Problem<double> plus = x.p, minus = x.p;
    const auto ins_plus = inputs(plus), ins_minus = inputs(minus);
    double analytic = 0;
    for (std::size_t t = 0; t < ins_plus.size(); ++t) {
      if (ins_plus[t]->empty()) continue;
      ASSERT_EQ(grads[t]->size(), ins_plus[t]->size()) << kInputNames[t];
      const std::vector<double> u =
          random_uniform<double>(ins_plus[t]->size(), c.seed * 100 + dir * 10 + t);
      for (std::size_t j = 0; j < u.size(); ++j) {
        (*ins_plus[t])[j] += kEps * u[j];
        (*ins_minus[t])[j] -= kEps * u[j];
      }
      analytic += dot(*grads[t], u);
    }
    const double numeric = (loss(form, x, plus) - loss(form, x, minus)) / (2 * kEps);
    EXPECT_TRUE(within_tolerance(analytic, numeric))
        << "direction " << dir << ": analytic " << analytic << " numeric " << numeric
        << " difference " << analytic - numeric;
  }
}

const std::vector<Form> kLargerForms = {
    {"Recurrent", Kind::kRecurrent},   {"Quadratic", Kind::kQuadratic},
    {"Blocked64", Kind::kBlocked, 64}, {"Blocked48", Kind::kBlocked, 48},
    {"Softmax", Kind::kSoftmax},
};

const std::vector<GradCase> kLargerCases = {
    {"N200NoDecayAndStrongDecay", 1, 2, 200, 16, 16, {0.0, 2.0}, true, true, 501},
    {"N300D32Alibi", 2, 2, 300, 32, 32, alibi_slopes(2), true, true, 502},
    {"N131D16E32NoFinalGradient", 1, 2, 131, 16, 32, {0.0, 2.0}, true, false, 503},
    {"N100NoInitialState", 1, 1, 100, 32, 16, {0.05}, false, true, 504},
};

INSTANTIATE_TEST_SUITE_P(Larger,
                         CpuReferenceGradientsDirectional,
                         testing::Combine(testing::ValuesIn(kLargerForms),
                                          testing::ValuesIn(kLargerCases)),
                         form_and_case_name);

}  // namespace
}  // namespace lightning::ref
