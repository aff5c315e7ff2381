// Shared helpers of the GPU tests (label gpu): a fixture that skips without a device, a random
// problem on the device in a given dtype and layout with its float64 host copy, and checks of
// forward outputs and gradients against the CPU float64 reference under DESIGN.md section 5
// rules 1 and 2 (baseline: the blocked float computation rounded to the storage dtype for the
// linear models, a float softmax with rounded P and outputs for softmax).
//
// Usage, for any implementation that takes the API's params structs:
//   DeviceProblem p = make_device_problem(spec);
//   p.attach_workspaces();                           // for the production kernels
//   lightning::forward(p.fwd);                       // or a reference
//   EXPECT_TRUE(check_forward(p, Model::kLinear));   // prints the first mismatches by [b,h,n,d]
//   lightning::backward(p.bwd);
//   EXPECT_TRUE(check_backward(p, Model::kLinear));
//
// Nothing here touches CUDA before a test body runs (test discovery works without a GPU).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/cpu.h>
#include <lightning/reference/device.h>
#include <lightning/reference/parallel.h>
#include <lightning/reference/tolerance.h>

namespace lightning::test_util {

// Fixtures for GPU tests: skipped, visibly, where there is no device.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gpu::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

template <class Param>
class GpuTestWithParam : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (gpu::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

// The grid of the production kernels' tests: dtype x layout x (D, E), with its values and a test
// name such as "bf16_bhnd_d64e128".
using KernelGridParam = std::tuple<DType, Layout, std::pair<int, int>>;

inline auto kernel_grid_values() {
  return ::testing::Combine(::testing::Values(DType::kBF16, DType::kFP16, DType::kFP32),
                            ::testing::Values(Layout::kBHND, Layout::kBNHD),
                            ::testing::Values(std::pair{64, 64}, std::pair{128, 128},
                                              std::pair{64, 128}, std::pair{128, 64}));
}

inline std::string kernel_grid_name(const ::testing::TestParamInfo<KernelGridParam>& info) {
  const KernelGridParam& p = info.param;
  return std::string(dtype_name(to_c(std::get<0>(p)))) + "_" + layout_name(std::get<1>(p)) + "_d" +
         std::to_string(std::get<2>(p).first) + "e" + std::to_string(std::get<2>(p).second);
}

// ---------------------------------------------------------------------------------------------
// Problems.

struct ProblemSpec {
  std::int64_t b = 1, h = 2, n = 913, d = 64, e = 64;
  DType dtype = DType::kBF16;
  Layout layout = Layout::kBHND;
  std::vector<float> s;    // one per head; empty: the ALiBi slopes
  bool states_in = true;   // initial state and dS_final given
  bool states_out = true;  // final state and dS0 requested
  float scale = 0;         // 0: 1 / sqrt(d)
  std::uint64_t seed = 1;

  std::vector<float> slopes() const {
    if (!s.empty()) return s;
    std::vector<float> out;
    for (double x : ref::alibi_slopes(h)) out.push_back(static_cast<float>(x));
    return out;
  }
  float effective_scale() const {
    return scale != 0 ? scale : 1.0f / std::sqrt(static_cast<float>(d));
  }
  // A name usable in a test name: letters, digits and underscores.
  std::string name() const {
    std::ostringstream os;
    os << dtype_name(to_c(dtype)) << "_" << layout_name(layout) << "_b" << b << "h" << h << "n" << n
       << "d" << d << "e" << e;
    if (s.empty()) {
      os << "_alibi";
    } else {
      os << "_s" << static_cast<int>(s[0] * 1000);  // s in thousandths (first head)
    }
    os << (states_in ? "_statesin" : "") << (states_out ? "_statesout" : "") << "_seed" << seed;
    return os.str();
  }
};

// Device buffers of one problem (inputs filled from the seed, outputs poisoned with NaN), the
// forward and backward params over them, and float64 host copies of the inputs exactly as the
// device holds them (already rounded to the storage dtype).
struct DeviceProblem {
  ProblemSpec spec;
  gpu::DeviceBuffer q, k, v, o, s, initial_state, final_state;
  gpu::DeviceBuffer dout, dfinal_state, dq, dk, dv, dinitial_state;
  gpu::DeviceBuffer fwd_workspace, bwd_workspace;  // see attach_workspaces()
  ForwardParams fwd;
  BackwardParams bwd;
  ref::Problem<double> host;        // q, k, v, s, scale, initial state (empty when absent)
  std::vector<double> dout_host;    // [B, H, N, E]
  std::vector<double> dfinal_host;  // [B, H, D, E], empty when absent

  std::int64_t activation_count(std::int64_t width) const {
    return spec.b * spec.h * spec.n * width;
  }
  std::int64_t state_count() const { return spec.b * spec.h * spec.d * spec.e; }

  // Workspaces of the production kernels (lightning::forward / backward) for these shapes, set
  // in fwd and bwd. The references need none.
  void attach_workspaces() {
    fwd_workspace = gpu::DeviceBuffer(forward_workspace_size(fwd));
    fwd.workspace = fwd_workspace.data();
    fwd.workspace_bytes = fwd_workspace.bytes();
    bwd_workspace = gpu::DeviceBuffer(backward_workspace_size(bwd));
    bwd.workspace = bwd_workspace.data();
    bwd.workspace_bytes = bwd_workspace.bytes();
  }

  // NaN into every output, so an element left unwritten fails the checks.
  void poison_outputs() const {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const lightning_dtype_t dt = to_c(spec.dtype);
    gpu::fill_value(o.data(), dt, activation_count(spec.e), nan);
    gpu::fill_value(dq.data(), dt, activation_count(spec.d), nan);
    gpu::fill_value(dk.data(), dt, activation_count(spec.d), nan);
    gpu::fill_value(dv.data(), dt, activation_count(spec.e), nan);
    if (spec.states_out) {
      gpu::fill_value(final_state.data(), LIGHTNING_FP32, state_count(), nan);
      gpu::fill_value(dinitial_state.data(), LIGHTNING_FP32, state_count(), nan);
    }
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  }
};

inline DeviceProblem make_device_problem(const ProblemSpec& spec) {
  DeviceProblem p;
  p.spec = spec;
  const lightning_dtype_t dt = to_c(spec.dtype);
  const std::size_t el = dtype_size(dt);
  const auto bytes = [&](std::int64_t count, std::size_t size) {
    return static_cast<std::size_t>(count) * size;
  };
  const std::int64_t qk = p.activation_count(spec.d), ve = p.activation_count(spec.e);
  p.q = gpu::DeviceBuffer(bytes(qk, el));
  p.k = gpu::DeviceBuffer(bytes(qk, el));
  p.v = gpu::DeviceBuffer(bytes(ve, el));
  p.o = gpu::DeviceBuffer(bytes(ve, el));
  p.dout = gpu::DeviceBuffer(bytes(ve, el));
  p.dq = gpu::DeviceBuffer(bytes(qk, el));
  p.dk = gpu::DeviceBuffer(bytes(qk, el));
  p.dv = gpu::DeviceBuffer(bytes(ve, el));
  p.s = gpu::DeviceBuffer(bytes(spec.h, sizeof(float)));
  const std::uint64_t seed = spec.seed * 16;
  gpu::fill_uniform(p.q.data(), dt, qk, seed + 1, -1.0f, 1.0f);
  gpu::fill_uniform(p.k.data(), dt, qk, seed + 2, -1.0f, 1.0f);
  gpu::fill_uniform(p.v.data(), dt, ve, seed + 3, -1.0f, 1.0f);
  gpu::fill_uniform(p.dout.data(), dt, ve, seed + 4, -1.0f, 1.0f);
  const std::vector<float> slopes = spec.slopes();
  LIGHTNING_CUDA_CHECK(
      cudaMemcpy(p.s.data(), slopes.data(), slopes.size() * sizeof(float), cudaMemcpyHostToDevice));

  const auto act = [&](const gpu::DeviceBuffer& buf, std::int64_t width) {
    return make_tensor(buf.data(), spec.dtype, spec.layout, spec.b, spec.h, spec.n, width);
  };
  const auto state = [&](const gpu::DeviceBuffer& buf) {
    return make_state(buf.as<float>(), spec.b, spec.h, spec.d, spec.e);
  };
  const float scale = spec.effective_scale();
  p.fwd.q = p.bwd.q = act(p.q, spec.d);
  p.fwd.k = p.bwd.k = act(p.k, spec.d);
  p.fwd.v = p.bwd.v = act(p.v, spec.e);
  p.fwd.o = act(p.o, spec.e);
  p.bwd.dout = act(p.dout, spec.e);
  p.bwd.dq = act(p.dq, spec.d);
  p.bwd.dk = act(p.dk, spec.d);
  p.bwd.dv = act(p.dv, spec.e);
  p.fwd.s = p.bwd.s = p.s.as<float>();
  p.fwd.scale = p.bwd.scale = scale;
  if (spec.states_in) {
    p.initial_state = gpu::DeviceBuffer(bytes(p.state_count(), sizeof(float)));
    p.dfinal_state = gpu::DeviceBuffer(bytes(p.state_count(), sizeof(float)));
    gpu::fill_uniform(p.initial_state.data(), LIGHTNING_FP32, p.state_count(), seed + 5, -1.0f,
                      1.0f);
    gpu::fill_uniform(p.dfinal_state.data(), LIGHTNING_FP32, p.state_count(), seed + 6, -1.0f,
                      1.0f);
    p.fwd.initial_state = p.bwd.initial_state = state(p.initial_state);
    p.bwd.dfinal_state = state(p.dfinal_state);
  }
  if (spec.states_out) {
    p.final_state = gpu::DeviceBuffer(bytes(p.state_count(), sizeof(float)));
    p.dinitial_state = gpu::DeviceBuffer(bytes(p.state_count(), sizeof(float)));
    p.fwd.final_state = state(p.final_state);
    p.bwd.dinitial_state = state(p.dinitial_state);
  }
  p.poison_outputs();  // synchronizes: the fills are done before the host copies below

  p.host.b = spec.b;
  p.host.h = spec.h;
  p.host.n = spec.n;
  p.host.d = spec.d;
  p.host.e = spec.e;
  p.host.q = gpu::to_host_double(p.fwd.q);
  p.host.k = gpu::to_host_double(p.fwd.k);
  p.host.v = gpu::to_host_double(p.fwd.v);
  p.host.s.assign(slopes.begin(), slopes.end());
  p.host.scale = scale;
  p.dout_host = gpu::to_host_double(p.bwd.dout);
  if (spec.states_in) {
    p.host.initial_state = gpu::to_host_double(p.fwd.initial_state);
    p.dfinal_host = gpu::to_host_double(p.bwd.dfinal_state);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Baselines (DESIGN.md rule 1: the naive computation in the storage dtype).

inline ref::RoundFn<float> storage_round(DType dtype) {
  if (dtype == DType::kFP32) return {};
  const lightning_dtype_t dt = to_c(dtype);
  return [dt](float x) { return static_cast<float>(ref::round_to(dt, x)); };
}

template <class T>
std::vector<double> to_double(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

namespace detail {

// Causal softmax probabilities of one (b, h) slice in float, rounded to the storage dtype: row i
// holds columns 0..i of an (n, n) row-major matrix.
inline std::vector<float> softmax_probs_float(const std::vector<float>& q,
                                              const std::vector<float>& k,
                                              std::int64_t n,
                                              std::int64_t d,
                                              float scale,
                                              const ref::RoundFn<float>& round) {
  std::vector<float> probs(static_cast<std::size_t>(n * n), 0.0f);
  std::vector<float> row(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j <= i; ++j) {
      float dot = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += q[i * d + c] * k[j * d + c];
      row[j] = scale * dot;
      m = std::max(m, row[j]);
    }
    float sum = 0;
    for (std::int64_t j = 0; j <= i; ++j) {
      row[j] = std::exp(row[j] - m);
      sum += row[j];
    }
    for (std::int64_t j = 0; j <= i; ++j) {
      const float x = row[j] / sum;
      probs[i * n + j] = round ? round(x) : x;
    }
  }
  return probs;
}

inline std::vector<float> head_slice(const std::vector<float>& x,
                                     std::int64_t head,
                                     std::int64_t n,
                                     std::int64_t width) {
  return std::vector<float>(x.begin() + head * n * width, x.begin() + (head + 1) * n * width);
}

}  // namespace detail

// Causal softmax attention in float with P and o rounded to the storage dtype.
inline ref::Forward<float> softmax_baseline_forward(const ref::Problem<float>& p,
                                                    const ref::RoundFn<float>& round) {
  ref::Forward<float> f;
  f.o.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.e), 0.0f);
  ref::parallel_for(p.b * p.h, [&](std::int64_t bh) {
    const auto q = detail::head_slice(p.q, bh, p.n, p.d);
    const auto k = detail::head_slice(p.k, bh, p.n, p.d);
    const auto v = detail::head_slice(p.v, bh, p.n, p.e);
    const auto probs = detail::softmax_probs_float(q, k, p.n, p.d, p.scale, round);
    float* o = f.o.data() + bh * p.n * p.e;
    for (std::int64_t i = 0; i < p.n; ++i) {
      for (std::int64_t c = 0; c < p.e; ++c) {
        float acc = 0;
        for (std::int64_t j = 0; j <= i; ++j) acc += probs[i * p.n + j] * v[j * p.e + c];
        o[i * p.e + c] = round ? round(acc) : acc;
      }
    }
  });
  return f;
}

// Its gradients in float: P and dS = P (.) (dP - rowsum(P (.) dP)) rounded, as are dq, dk, dv.
inline ref::Gradients<float> softmax_baseline_backward(const ref::Problem<float>& p,
                                                       const std::vector<float>& dout,
                                                       const ref::RoundFn<float>& round) {
  ref::Gradients<float> g;
  g.dq.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.d), 0.0f);
  g.dk.assign(g.dq.size(), 0.0f);
  g.dv.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.e), 0.0f);
  const auto r = [&](float x) { return round ? round(x) : x; };
  ref::parallel_for(p.b * p.h, [&](std::int64_t bh) {
    const std::int64_t n = p.n, d = p.d, e = p.e;
    const auto q = detail::head_slice(p.q, bh, n, d);
    const auto k = detail::head_slice(p.k, bh, n, d);
    const auto v = detail::head_slice(p.v, bh, n, e);
    const auto dov = detail::head_slice(dout, bh, n, e);
    const auto probs = detail::softmax_probs_float(q, k, n, d, p.scale, round);
    std::vector<float> ds(static_cast<std::size_t>(n * n), 0.0f);
    for (std::int64_t i = 0; i < n; ++i) {
      std::vector<float> dp(static_cast<std::size_t>(i + 1));
      float row_dot = 0;
      for (std::int64_t j = 0; j <= i; ++j) {
        float acc = 0;
        for (std::int64_t c = 0; c < e; ++c) acc += dov[i * e + c] * v[j * e + c];
        dp[j] = acc;
        row_dot += probs[i * n + j] * acc;
      }
      for (std::int64_t j = 0; j <= i; ++j) ds[i * n + j] = r(probs[i * n + j] * (dp[j] - row_dot));
    }
    float* dq = g.dq.data() + bh * n * d;
    float* dk = g.dk.data() + bh * n * d;
    float* dv = g.dv.data() + bh * n * e;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t c = 0; c < d; ++c) {
        float acc = 0;
        for (std::int64_t j = 0; j <= i; ++j) acc += ds[i * n + j] * k[j * d + c];
        dq[i * d + c] = r(p.scale * acc);
      }
    }
    for (std::int64_t j = 0; j < n; ++j) {
      for (std::int64_t c = 0; c < d; ++c) {
        float acc = 0;
        for (std::int64_t i = j; i < n; ++i) acc += ds[i * n + j] * q[i * d + c];
        dk[j * d + c] = r(p.scale * acc);
      }
      for (std::int64_t c = 0; c < e; ++c) {
        float acc = 0;
        for (std::int64_t i = j; i < n; ++i) acc += probs[i * n + j] * dov[i * e + c];
        dv[j * e + c] = r(acc);
      }
    }
  });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Checks.

enum class Model { kLinear, kSoftmax };

// Collects the verdicts of several tensors into one gtest result with every line.
class Checks {
 public:
  explicit Checks(std::string title) : title_(std::move(title)) {}

  void add(const std::string& name,
           const std::vector<double>& got,
           const std::vector<double>& baseline,
           const std::vector<double>& want,
           lightning_dtype_t dtype,
           bool gradient,
           const std::array<std::int64_t, 4>& shape) {
    const ref::Verdict v = ref::check_tensor(name, got, baseline, want, dtype, gradient, shape);
    pass_ = pass_ && v.pass;
    lines_ << "\n  " << v.message;
  }

  ::testing::AssertionResult result() const {
    if (pass_) return ::testing::AssertionSuccess() << title_ << lines_.str();
    return ::testing::AssertionFailure() << title_ << lines_.str();
  }

 private:
  std::string title_;
  bool pass_ = true;
  std::ostringstream lines_;
};

// The forward outputs of p.fwd (o, and the final state when requested and the model has one)
// against the CPU float64 reference, rules 1 and 2. strict_states: hold the fp32 states to the
// fp32 limits whatever the problem's dtype (the references' compensated states meet them).
inline ::testing::AssertionResult check_forward(const DeviceProblem& p,
                                                Model model = Model::kLinear,
                                                int block = 64,
                                                bool strict_states = false) {
  const ProblemSpec& sp = p.spec;
  const lightning_dtype_t dt = to_c(sp.dtype);
  const ref::Problem<float> pf = ref::convert_problem<float>(p.host);
  Checks checks("forward " + sp.name() + (model == Model::kSoftmax ? " softmax" : " linear"));
  if (model == Model::kSoftmax) {
    const ref::Forward<double> want = ref::softmax_forward(p.host);
    const ref::Forward<float> base = softmax_baseline_forward(pf, storage_round(sp.dtype));
    checks.add("o", gpu::to_host_double(p.fwd.o), to_double(base.o), want.o, dt, false,
               {sp.b, sp.h, sp.n, sp.e});
    return checks.result();
  }
  const ref::Forward<double> want = ref::recurrent_forward(p.host);
  const ref::Forward<float> base = ref::blocked_forward(pf, block, storage_round(sp.dtype));
  checks.add("o", gpu::to_host_double(p.fwd.o), to_double(base.o), want.o, dt, false,
             {sp.b, sp.h, sp.n, sp.e});
  if (sp.states_out) {
    // The state is fp32 storage; its tolerance follows the problem's dtype (rule 2), as the
    // production kernel's tests have it.
    checks.add("final_state", gpu::to_host_double(p.fwd.final_state), to_double(base.final_state),
               want.final_state, strict_states ? LIGHTNING_FP32 : dt, false,
               {sp.b, sp.h, sp.d, sp.e});
  }
  return checks.result();
}

// The gradients in p.bwd (dq, dk, dv, and dS0 when requested and the model has one) against the
// CPU float64 reference, rules 1 and 2.
inline ::testing::AssertionResult check_backward(const DeviceProblem& p,
                                                 Model model = Model::kLinear,
                                                 int block = 64,
                                                 bool strict_states = false) {
  const ProblemSpec& sp = p.spec;
  const lightning_dtype_t dt = to_c(sp.dtype);
  const ref::Problem<float> pf = ref::convert_problem<float>(p.host);
  const std::vector<float> dout_f = ref::convert<float>(p.dout_host);
  Checks checks("backward " + sp.name() + (model == Model::kSoftmax ? " softmax" : " linear"));
  ref::Gradients<double> want;
  ref::Gradients<float> base;
  if (model == Model::kSoftmax) {
    want = ref::softmax_backward(p.host, p.dout_host);
    base = softmax_baseline_backward(pf, dout_f, storage_round(sp.dtype));
  } else {
    want = ref::recurrent_backward(p.host, p.dout_host, p.dfinal_host);
    base = ref::blocked_backward(pf, dout_f, ref::convert<float>(p.dfinal_host), block,
                                 storage_round(sp.dtype));
  }
  checks.add("dq", gpu::to_host_double(p.bwd.dq), to_double(base.dq), want.dq, dt, true,
             {sp.b, sp.h, sp.n, sp.d});
  checks.add("dk", gpu::to_host_double(p.bwd.dk), to_double(base.dk), want.dk, dt, true,
             {sp.b, sp.h, sp.n, sp.d});
  checks.add("dv", gpu::to_host_double(p.bwd.dv), to_double(base.dv), want.dv, dt, true,
             {sp.b, sp.h, sp.n, sp.e});
  if (model == Model::kLinear && sp.states_out) {
    checks.add("dinitial_state", gpu::to_host_double(p.bwd.dinitial_state),
               to_double(base.dinitial_state), want.dinitial_state,
               strict_states ? LIGHTNING_FP32 : dt, true, {sp.b, sp.h, sp.d, sp.e});
  }
  return checks.result();
}

// The raw bytes of a device buffer (for bitwise determinism checks).
inline std::vector<unsigned char> device_bytes(const gpu::DeviceBuffer& buf) {
  std::vector<unsigned char> out(buf.bytes());
  if (!out.empty()) {
    LIGHTNING_CUDA_CHECK(cudaMemcpy(out.data(), buf.data(), out.size(), cudaMemcpyDeviceToHost));
  }
  return out;
}

}  // namespace lightning::test_util
