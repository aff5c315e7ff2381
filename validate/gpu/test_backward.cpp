// The production backward (passes of the forward kernel; ctest runs it again with dV and dK as
// two passes, LIGHTNING_BWD_SEPARATE=1) against the CPU float64 backward
// (DESIGN.md section 5, r = 3 for gradients): dtypes x layouts x head dims x the shape set, the
// segment path, the initial-state and final-state gradient paths, long sequences against the GPU
// recurrence oracle's backward, bitwise repeats, bad input.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/gpu.h>

#include "gpu_test_util.h"

namespace lightning::test_util {
namespace {

// The problem's backward on the device, checked against float64.
void check_backward_case(const ProblemSpec& spec) {
  SCOPED_TRACE(spec.name());
  DeviceProblem p = make_device_problem(spec);
  p.attach_workspaces();
  backward(p.bwd);
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(check_backward(p));
}

class LightningBackward : public GpuTest {};

class LightningBackwardGrid : public GpuTestWithParam<KernelGridParam> {};

TEST_P(LightningBackwardGrid, MatchesFp64ReferenceOnRaggedLength) {
  ProblemSpec spec;
  spec.dtype = std::get<0>(GetParam());
  spec.layout = std::get<1>(GetParam());
  spec.d = std::get<2>(GetParam()).first;
  spec.e = std::get<2>(GetParam()).second;
  spec.b = 2;
  spec.h = 3;
  check_backward_case(spec);
}

INSTANTIATE_TEST_SUITE_P(DtypesLayoutsHeadDims,
                         LightningBackwardGrid,
                         kernel_grid_values(),
                         kernel_grid_name);

TEST_F(LightningBackward, HandlesOneTokenAndSequencesShorterThanABlock) {
  // E = 128 with D = 128: the dQ pass takes the warp-specialised output pass (bf16 / fp16).
  for (std::int64_t n : {1, 2, 17, 63, 64, 65}) {
    for (DType dt : {DType::kBF16, DType::kFP32}) {
      for (std::int64_t e : {64, 128}) {
        ProblemSpec spec;
        spec.dtype = dt;
        spec.n = n;
        spec.d = 128;
        spec.e = e;
        check_backward_case(spec);
      }
    }
  }
}

TEST_F(LightningBackward, HandlesNoDecayAndStrongDecay) {
  for (float s : {0.0f, 2.0f, 12.0f}) {
    for (DType dt : {DType::kBF16, DType::kFP16, DType::kFP32}) {
      ProblemSpec spec;
      spec.dtype = dt;
      spec.s = {s, s};
      spec.n = 700;
      check_backward_case(spec);
    }
  }
}

TEST_F(LightningBackward, HandlesAbsentStatesAndEachStatePathAlone) {
  for (auto [in, out] : {std::pair{false, false}, std::pair{true, false}, std::pair{false, true}}) {
    ProblemSpec spec;
    spec.states_in = in;
    spec.states_out = out;
    spec.layout = Layout::kBNHD;
    check_backward_case(spec);
  }
}

TEST_F(LightningBackward, SplitsLongSequencesIntoSegmentsCorrectly) {
  for (DType dt : {DType::kBF16, DType::kFP32}) {
    ProblemSpec spec;
    spec.dtype = dt;
    spec.b = 1;
    spec.h = 2;
    spec.n = 9000;
    spec.d = 128;
    spec.e = 64;
    spec.s = {0.0f, 0.05f};
    DeviceProblem probe = make_device_problem(spec);
    EXPECT_GT(backward_workspace_size(probe.bwd), 0u) << "expected the segment path";
    check_backward_case(spec);
  }
}

TEST_F(LightningBackward, CutsFewSegmentsIntoPiecesForTheLocalStatePass) {
  // 64 (b, h) chains: two segments, the local-state passes in two pieces each (as the forward's).
  ProblemSpec spec;
  spec.b = 1;
  spec.h = 64;
  spec.n = 4100;
  spec.d = 128;
  spec.e = 128;
  DeviceProblem probe = make_device_problem(spec);
  EXPECT_EQ(backward_workspace_size(probe.bwd), static_cast<std::size_t>(64 * 3 * 128 * 128 * 4))
      << "expected two segments, the first in two pieces";
  check_backward_case(spec);
}

TEST_F(LightningBackward, HandlesRaggedSegmentsOnASmallShape) {
  // Small enough for compute-sanitizer: one head, two segments, a ragged last block; at
  // D = E = 128 the dQ pass is the warp-specialised output pass, with the states in and out.
  struct Variant {
    DType dtype;
    std::int64_t d;
  };
  for (const Variant& shape :
       {Variant{DType::kBF16, 64}, Variant{DType::kFP32, 64}, Variant{DType::kBF16, 128}}) {
    ProblemSpec spec;
    spec.dtype = shape.dtype;
    spec.h = 1;
    spec.n = 2500;
    spec.d = shape.d;
    spec.e = 128;
    spec.s = {0.01f};
    check_backward_case(spec);
  }
}

TEST_F(LightningBackward, MatchesFp64At131072TokensOnTwoHeads) {
  ProblemSpec spec;
  spec.n = 131072;
  spec.d = 128;
  spec.e = 128;
  check_backward_case(spec);
}

TEST_F(LightningBackward, MatchesGpuRecurrenceOracleAt131072TokensOn16Heads) {
  ProblemSpec spec;
  spec.h = 16;
  spec.n = 131072;
  spec.d = 128;
  spec.e = 128;
  spec.layout = Layout::kBNHD;
  DeviceProblem p = make_device_problem(spec);
  p.attach_workspaces();
  backward(p.bwd);
  DeviceProblem oracle = make_device_problem(spec);  // same seed: the same inputs
  ref::gpu::recurrent_backward(oracle.bwd);
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto [got, want] :
       {std::pair{&p.bwd.dq, &oracle.bwd.dq}, std::pair{&p.bwd.dk, &oracle.bwd.dk},
        std::pair{&p.bwd.dv, &oracle.bwd.dv},
        std::pair{&p.bwd.dinitial_state, &oracle.bwd.dinitial_state}}) {
    const ref::ErrorStats err =
        ref::error_stats(gpu::to_host_double(*got), gpu::to_host_double(*want));
    EXPECT_EQ(err.nan_count, 0);
    EXPECT_LT(err.rel_l2, 5e-3) << "max_abs " << err.max_abs;
  }
}

TEST_F(LightningBackward, IsBitwiseDeterministicOverTwentyRuns) {
  for (std::int64_t n : {913, 20000}) {  // the second takes the segment path
    ProblemSpec spec;
    spec.h = 4;
    spec.n = n;
    spec.d = 128;
    spec.e = 128;
    DeviceProblem p = make_device_problem(spec);
    p.attach_workspaces();
    backward(p.bwd);
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
    const auto dq = device_bytes(p.dq), dk = device_bytes(p.dk), dv = device_bytes(p.dv);
    const auto ds0 = device_bytes(p.dinitial_state);
    for (int i = 0; i < 20; ++i) {
      backward(p.bwd);
      LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
      ASSERT_EQ(device_bytes(p.dq), dq) << "run " << i << " n " << n;
      ASSERT_EQ(device_bytes(p.dk), dk) << "run " << i << " n " << n;
      ASSERT_EQ(device_bytes(p.dv), dv) << "run " << i << " n " << n;
      ASSERT_EQ(device_bytes(p.dinitial_state), ds0) << "run " << i << " n " << n;
    }
  }
}

TEST_F(LightningBackward, RejectsBadInputWithItsStatus) {
  ProblemSpec spec;
  spec.h = 1;
  spec.n = 8192;
  DeviceProblem p = make_device_problem(spec);
  p.attach_workspaces();
  BackwardParams bad = p.bwd;
  bad.dq.data = nullptr;
  EXPECT_EQ(lightning_backward(&bad, nullptr), LIGHTNING_ERROR_NULL_POINTER);
  bad = p.bwd;
  bad.dv.shape[3] = 64;  // E is 64 here: make it disagree with v instead
  bad.v.shape[3] = 128;
  EXPECT_NE(lightning_backward(&bad, nullptr), LIGHTNING_SUCCESS);
  bad = p.bwd;
  ASSERT_GT(bad.workspace_bytes, 0u);
  bad.workspace_bytes -= 256;
  EXPECT_EQ(lightning_backward(&bad, nullptr), LIGHTNING_ERROR_WORKSPACE);
  std::vector<float> slopes(1, -1.0f);
  LIGHTNING_CUDA_CHECK(cudaMemcpy(p.s.data(), slopes.data(), 4, cudaMemcpyHostToDevice));
  EXPECT_EQ(lightning_backward(&p.bwd, nullptr), LIGHTNING_ERROR_INVALID_SLOPE);
  // Nothing was enqueued: the gradients still hold the NaN poison.
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(std::isnan(gpu::to_host_double(p.bwd.dq)[0]));
}

}  // namespace
}  // namespace lightning::test_util
