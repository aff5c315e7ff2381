// The GPU references (naive softmax, cumsum linear attention, the sequential recurrence) against
// the CPU float64 references under DESIGN.md section 5 rules 1 and 2, forward and backward: every
// dtype, both layouts, the shape set (ragged N, N = 1, D != E, s = 0, strong decay, with and
// without states); the recurrence oracle at N = 32768; determinism; bad input; out of memory.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/errors.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#include "gpu_test_util.h"

namespace lightning::test_util {
namespace {

enum class Reference { kSoftmax, kCumsum, kRecurrent };

const char* reference_name(Reference r) {
  switch (r) {
    case Reference::kSoftmax:
      return "softmax";
    case Reference::kCumsum:
      return "cumsum";
    case Reference::kRecurrent:
      return "recurrent";
  }
  return "unknown";
}

Model model_of(Reference r) {
  return r == Reference::kSoftmax ? Model::kSoftmax : Model::kLinear;
}

void run_forward(Reference r, const lightning_fwd_params_t& params) {
  switch (r) {
    case Reference::kSoftmax:
      ref::gpu::softmax_forward(params);
      break;
    case Reference::kCumsum:
      ref::gpu::cumsum_forward(params);
      break;
    case Reference::kRecurrent:
      ref::gpu::recurrent_forward(params);
      break;
  }
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
}

void run_backward(Reference r, const lightning_bwd_params_t& params) {
  switch (r) {
    case Reference::kSoftmax:
      ref::gpu::softmax_backward(params);
      break;
    case Reference::kCumsum:
      ref::gpu::cumsum_backward(params);
      break;
    case Reference::kRecurrent:
      ref::gpu::recurrent_backward(params);
      break;
  }
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
}

bool all_nan(const std::vector<double>& x) {
  for (double v : x) {
    if (!std::isnan(v)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The shape set, over every reference, dtype and layout.

struct ReferenceCase {
  Reference reference;
  ProblemSpec spec;
};

std::vector<ReferenceCase> reference_cases() {
  std::vector<ProblemSpec> shapes;
  {
    ProblemSpec s;  // ragged N, ALiBi slopes, both states
    s.b = 1, s.h = 2, s.n = 913, s.d = 64, s.e = 64;
    shapes.push_back(s);
  }
  {
    ProblemSpec s;  // one token, D != E
    s.b = 2, s.h = 1, s.n = 1, s.d = 64, s.e = 128;
    shapes.push_back(s);
  }
  {
    ProblemSpec s;  // no decay (the state grows with N), D != E, states in but not out
    s.b = 1, s.h = 2, s.n = 200, s.d = 128, s.e = 64;
    s.s = {0.0f, 0.0f};
    s.states_out = false;
    s.seed = 2;
    shapes.push_back(s);
  }
  {
    ProblemSpec s;  // strong decay, no states at all
    s.b = 2, s.h = 2, s.n = 150, s.d = 128, s.e = 128;
    s.s = {2.0f, 2.0f};
    s.states_in = false;
    s.states_out = false;
    s.seed = 3;
    shapes.push_back(s);
  }
  std::vector<ReferenceCase> cases;
  for (Reference r : {Reference::kSoftmax, Reference::kCumsum, Reference::kRecurrent}) {
    for (DType dt : {DType::kBF16, DType::kFP16, DType::kFP32}) {
      for (Layout layout : {Layout::kBHND, Layout::kBNHD}) {
        for (ProblemSpec s : shapes) {
          s.dtype = dt;
          s.layout = layout;
          cases.push_back({r, s});
        }
      }
    }
  }
  return cases;
}

class GpuReference : public GpuTestWithParam<ReferenceCase> {};

TEST_P(GpuReference, MatchesFp64CpuReference) {
  const ReferenceCase& c = GetParam();
  DeviceProblem p = make_device_problem(c.spec);
  const Model model = model_of(c.reference);
  run_forward(c.reference, p.fwd);
  EXPECT_TRUE(check_forward(p, model, 64, /*strict_states=*/true));
  run_backward(c.reference, p.bwd);
  EXPECT_TRUE(check_backward(p, model, 64, /*strict_states=*/true));
  if (c.reference == Reference::kSoftmax && c.spec.states_out) {
    // Softmax has no state: the state outputs keep their NaN poison.
    EXPECT_TRUE(all_nan(gpu::to_host_double(p.fwd.final_state)));
    EXPECT_TRUE(all_nan(gpu::to_host_double(p.bwd.dinitial_state)));
  }
}

INSTANTIATE_TEST_SUITE_P(ShapeSet,
                         GpuReference,
                         ::testing::ValuesIn(reference_cases()),
                         [](const ::testing::TestParamInfo<ReferenceCase>& param_info) {
                           return std::string(reference_name(param_info.param.reference)) + "_" +
                                  param_info.param.spec.name();
                         });

// ---------------------------------------------------------------------------------------------
// The long-sequence oracle.

class GpuRecurrence : public GpuTest {};

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

TEST_F(GpuRecurrence, MatchesFp64At32768TokensOnTwoHeads) {
  ProblemSpec s;
  s.b = 1, s.h = 2, s.n = 32768, s.d = 128, s.e = 64;
  s.layout = Layout::kBNHD;
  s.seed = 5;
  DeviceProblem p = make_device_problem(s);
  auto start = std::chrono::steady_clock::now();
  run_forward(Reference::kRecurrent, p.fwd);
  const double forward_ms = milliseconds_since(start);
  EXPECT_TRUE(check_forward(p, Model::kLinear, 64, /*strict_states=*/true));
  start = std::chrono::steady_clock::now();
  run_backward(Reference::kRecurrent, p.bwd);
  const double backward_ms = milliseconds_since(start);
  EXPECT_TRUE(check_backward(p, Model::kLinear, 64, /*strict_states=*/true));
  // Information, not a test of speed: one cold call each, launch and slope check included.
  std::cout << "[ INFO     ] recurrent at N = 32768, B*H = 2, D = 128, E = 64: forward "
            << forward_ms << " ms, backward " << backward_ms << " ms\n";
}

TEST_F(GpuRecurrence, MatchesFp64At32768TokensInFp32WithNoAndWeakDecay) {
  // The hard case for a float32 recurrence: s = 0 (the state sums all 32768 tokens) and a decay
  // whose float rounding, raised to the t-th power, would show at fp32's 1e-5 limit.
  ProblemSpec s;
  s.b = 1, s.h = 2, s.n = 32768, s.d = 64, s.e = 64;
  s.dtype = DType::kFP32;
  s.s = {0.0f, 1.0f / 4096};
  s.seed = 6;
  DeviceProblem p = make_device_problem(s);
  run_forward(Reference::kRecurrent, p.fwd);
  EXPECT_TRUE(check_forward(p, Model::kLinear, 64, /*strict_states=*/true));
  run_backward(Reference::kRecurrent, p.bwd);
  EXPECT_TRUE(check_backward(p, Model::kLinear, 64, /*strict_states=*/true));
}

// ---------------------------------------------------------------------------------------------
// Determinism, bad input, out of memory.

class GpuReferenceEach : public GpuTestWithParam<Reference> {};

TEST_P(GpuReferenceEach, IsBitwiseDeterministic) {
  ProblemSpec s;
  s.n = 300;
  s.layout = Layout::kBNHD;
  DeviceProblem p = make_device_problem(s);
  const Reference r = GetParam();
  run_forward(r, p.fwd);
  run_backward(r, p.bwd);
  const auto o = device_bytes(p.o), fin = device_bytes(p.final_state);
  const auto dq = device_bytes(p.dq), dk = device_bytes(p.dk), dv = device_bytes(p.dv);
  const auto ds0 = device_bytes(p.dinitial_state);
  for (int i = 0; i < 3; ++i) {
    p.poison_outputs();
    run_forward(r, p.fwd);
    run_backward(r, p.bwd);
    EXPECT_EQ(device_bytes(p.o), o) << "run " << i;
    EXPECT_EQ(device_bytes(p.dq), dq) << "run " << i;
    EXPECT_EQ(device_bytes(p.dk), dk) << "run " << i;
    EXPECT_EQ(device_bytes(p.dv), dv) << "run " << i;
    if (r != Reference::kSoftmax) {
      EXPECT_EQ(device_bytes(p.final_state), fin) << "run " << i;
      EXPECT_EQ(device_bytes(p.dinitial_state), ds0) << "run " << i;
    }
  }
}

TEST_P(GpuReferenceEach, RejectsBadInputBeforeAnyWork) {
  ProblemSpec s;
  s.n = 64;
  DeviceProblem p = make_device_problem(s);
  const Reference r = GetParam();
  ForwardParams f = p.fwd;
  f.q.data = nullptr;
  EXPECT_THROW(run_forward(r, f), InvalidArgument);
  BackwardParams b = p.bwd;
  b.dv.shape[3] = 96;
  EXPECT_THROW(run_backward(r, b), InvalidArgument);
  if (r != Reference::kSoftmax) {  // softmax does not use s
    const std::vector<float> bad = {0.5f, -1.0f};
    LIGHTNING_CUDA_CHECK(
        cudaMemcpy(p.s.data(), bad.data(), bad.size() * sizeof(float), cudaMemcpyHostToDevice));
    EXPECT_THROW(run_forward(r, p.fwd), InvalidArgument);
    EXPECT_THROW(run_backward(r, p.bwd), InvalidArgument);
  }
  // Nothing was written.
  EXPECT_TRUE(all_nan(gpu::to_host_double(p.fwd.o)));
  EXPECT_TRUE(all_nan(gpu::to_host_double(p.bwd.dq)));
}

INSTANTIATE_TEST_SUITE_P(AllReferences,
                         GpuReferenceEach,
                         ::testing::Values(Reference::kSoftmax,
                                           Reference::kCumsum,
                                           Reference::kRecurrent),
                         [](const ::testing::TestParamInfo<Reference>& param_info) {
                           return std::string(reference_name(param_info.param));
                         });

class GpuReferenceMemory : public GpuTest {};

// Views of shape [1, h, n, d] over fresh (uninitialised) buffers: never read, the scratch
// allocation fails first.
struct HugeProblem {
  gpu::DeviceBuffer q, k, v, o, s;
  ForwardParams fwd;
  BackwardParams bwd;

  HugeProblem(std::int64_t h, std::int64_t n, std::int64_t d) {
    const std::size_t bytes = static_cast<std::size_t>(h * n * d) * 2;  // bf16
    q = gpu::DeviceBuffer(bytes);
    k = gpu::DeviceBuffer(bytes);
    v = gpu::DeviceBuffer(bytes);
    o = gpu::DeviceBuffer(bytes);
    s = gpu::DeviceBuffer(static_cast<std::size_t>(h) * sizeof(float));
    s.zero();
    fwd.q = bwd.q = make_tensor(q.data(), DType::kBF16, Layout::kBHND, 1, h, n, d);
    fwd.k = bwd.k = make_tensor(k.data(), DType::kBF16, Layout::kBHND, 1, h, n, d);
    fwd.v = bwd.v = make_tensor(v.data(), DType::kBF16, Layout::kBHND, 1, h, n, d);
    fwd.o = make_tensor(o.data(), DType::kBF16, Layout::kBHND, 1, h, n, d);
    // The backward's outputs alias its inputs: nothing is ever written.
    bwd.dout = bwd.dq = bwd.dk = bwd.dv = fwd.o;
    fwd.s = bwd.s = s.as<float>();
  }
};

// After an OutOfMemory: no CUDA error is left behind, the tracked bytes are back, and a small
// problem still allocates, runs and passes.
void expect_process_carries_on(Reference r, std::size_t tracked_before) {
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(gpu::TrackingAllocator::instance().current_bytes(), tracked_before);
  ProblemSpec s;
  s.n = 100;
  DeviceProblem p = make_device_problem(s);
  run_forward(r, p.fwd);
  EXPECT_TRUE(check_forward(p, model_of(r)));
}

TEST_F(GpuReferenceMemory, SoftmaxAtHugeLengthThrowsOutOfMemoryAndTheProcessCarriesOn) {
  const std::int64_t n = 262144;  // one head's scores: n^2 x 4 B = 256 GiB
  HugeProblem huge(1, n, 64);
  const std::size_t before = gpu::TrackingAllocator::instance().current_bytes();
  EXPECT_GE(ref::gpu::softmax_forward_scratch_bytes(huge.fwd), std::size_t{256} << 30);
  try {
    ref::gpu::softmax_forward(huge.fwd);
    ADD_FAILURE() << "softmax_forward at n = " << n << " did not throw";
  } catch (const OutOfMemory& e) {
    EXPECT_GE(e.requested_bytes(), std::size_t{256} << 30);
    EXPECT_NE(std::string(e.what()).find(std::to_string(e.requested_bytes())), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ref::gpu::softmax_backward(huge.bwd), OutOfMemory);
  expect_process_carries_on(Reference::kSoftmax, before);
}

TEST_F(GpuReferenceMemory, CumsumAtHugeLengthThrowsOutOfMemoryAndTheProcessCarriesOn) {
  // The per-token states: B*H*N*D*E x 4 B = 64 x 65536 x 128 x 128 x 4 B = 256 GiB, from
  // inputs of 1 GiB each.
  HugeProblem huge(64, 65536, 128);
  const std::size_t before = gpu::TrackingAllocator::instance().current_bytes();
  EXPECT_EQ(ref::gpu::cumsum_forward_scratch_bytes(huge.fwd), std::size_t{256} << 30);
  EXPECT_THROW(ref::gpu::cumsum_forward(huge.fwd), OutOfMemory);
  EXPECT_THROW(ref::gpu::cumsum_backward(huge.bwd), OutOfMemory);
  expect_process_carries_on(Reference::kCumsum, before);
}

}  // namespace
}  // namespace lightning::test_util
