// The production forward kernel against the CPU float64 reference (DESIGN.md section 5 rules 1, 2,
// 4, 5): dtypes x layouts x head dims x the shape set, the segment path, long sequences against the
// GPU recurrence oracle, state chaining, determinism, bad input and NaN propagation.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/cpu.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>
#include <lightning/reference/tolerance.h>

#include "gpu_test_util.h"

namespace lightning {
namespace {

using gpu::DeviceBuffer;
using test_util::kernel_grid_name;
using test_util::kernel_grid_values;
using test_util::KernelGridParam;

struct Case {
  DType dtype = DType::kBF16;
  Layout layout = Layout::kBHND;
  std::int64_t b = 2, h = 3, n = 913, d = 64, e = 64;
  std::vector<float> s;  // empty: ALiBi slopes
  bool initial_state = true;
  bool final_state = true;
  float scale = 1.0f;
  std::uint64_t seed = 1;

  std::string name() const {
    return std::string(dtype_name(to_c(dtype))) + "_" + layout_name(layout) + "_b" +
           std::to_string(b) + "h" + std::to_string(h) + "n" + std::to_string(n) + "d" +
           std::to_string(d) + "e" + std::to_string(e) + (initial_state ? "_s0" : "") + "_seed" +
           std::to_string(seed);
  }
};

// Device buffers and the forward params of one case, inputs filled from `seed`, o poisoned.
struct DeviceForward {
  Case c;
  DeviceBuffer q, k, v, o, s, s0, sf, ws;
  ForwardParams p;

  explicit DeviceForward(const Case& cs) : c(cs) {
    const lightning_dtype_t dt = to_c(c.dtype);
    const std::size_t el = dtype_size(dt);
    q = DeviceBuffer(c.b * c.h * c.n * c.d * el);
    k = DeviceBuffer(c.b * c.h * c.n * c.d * el);
    v = DeviceBuffer(c.b * c.h * c.n * c.e * el);
    o = DeviceBuffer(c.b * c.h * c.n * c.e * el);
    s = DeviceBuffer(c.h * sizeof(float));
    gpu::fill_uniform(q.data(), dt, c.b * c.h * c.n * c.d, c.seed * 10 + 1, -1.f, 1.f);
    gpu::fill_uniform(k.data(), dt, c.b * c.h * c.n * c.d, c.seed * 10 + 2, -1.f, 1.f);
    gpu::fill_uniform(v.data(), dt, c.b * c.h * c.n * c.e, c.seed * 10 + 3, -1.f, 1.f);
    gpu::fill_value(o.data(), dt, c.b * c.h * c.n * c.e, std::numeric_limits<float>::quiet_NaN());
    std::vector<float> slopes = c.s;
    if (slopes.empty()) {
      for (double x : ref::alibi_slopes(c.h)) slopes.push_back(static_cast<float>(x));
    }
    LIGHTNING_CUDA_CHECK(
        cudaMemcpy(s.data(), slopes.data(), c.h * sizeof(float), cudaMemcpyHostToDevice));
    p.q = make_tensor(q.data(), c.dtype, c.layout, c.b, c.h, c.n, c.d);
    p.k = make_tensor(k.data(), c.dtype, c.layout, c.b, c.h, c.n, c.d);
    p.v = make_tensor(v.data(), c.dtype, c.layout, c.b, c.h, c.n, c.e);
    p.o = make_tensor(o.data(), c.dtype, c.layout, c.b, c.h, c.n, c.e);
    p.s = s.as<float>();
    p.scale = c.scale;
    if (c.initial_state) {
      s0 = DeviceBuffer(c.b * c.h * c.d * c.e * sizeof(float));
      gpu::fill_uniform(s0.data(), LIGHTNING_FP32, c.b * c.h * c.d * c.e, c.seed * 10 + 4, -1.f,
                        1.f);
      p.initial_state = make_state(s0.as<float>(), c.b, c.h, c.d, c.e);
    }
    if (c.final_state) {
      sf = DeviceBuffer(c.b * c.h * c.d * c.e * sizeof(float));
      gpu::fill_value(sf.data(), LIGHTNING_FP32, c.b * c.h * c.d * c.e,
                      std::numeric_limits<float>::quiet_NaN());
      p.final_state = make_state(sf.as<float>(), c.b, c.h, c.d, c.e);
    }
    const std::size_t bytes = forward_workspace_size(p);
    if (bytes) {
      ws = DeviceBuffer(bytes);
      p.workspace = ws.data();
      p.workspace_bytes = bytes;
    }
  }

  void run() {
    forward(p);
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // The inputs exactly as the kernel saw them (already rounded), in float64.
  ref::Problem<double> problem() const {
    ref::Problem<double> pr;
    pr.b = c.b;
    pr.h = c.h;
    pr.n = c.n;
    pr.d = c.d;
    pr.e = c.e;
    pr.q = gpu::to_host_double(p.q);
    pr.k = gpu::to_host_double(p.k);
    pr.v = gpu::to_host_double(p.v);
    std::vector<float> slopes(c.h);
    LIGHTNING_CUDA_CHECK(
        cudaMemcpy(slopes.data(), s.data(), c.h * sizeof(float), cudaMemcpyDeviceToHost));
    pr.s.assign(slopes.begin(), slopes.end());
    pr.scale = c.scale;
    if (c.initial_state) pr.initial_state = gpu::to_host_double(p.initial_state);
    return pr;
  }
};

ref::RoundFn<float> storage_round(DType dtype) {
  if (dtype == DType::kFP32) return {};
  const lightning_dtype_t dt = to_c(dtype);
  return [dt](float x) { return static_cast<float>(ref::round_to(dt, x)); };
}

template <class T>
std::vector<double> to_double(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// Run the case and check o and the final state against float64 under rules 1 and 2.
void check_forward_case(const Case& c) {
  SCOPED_TRACE(c.name());
  DeviceForward f(c);
  f.run();
  const ref::Problem<double> pr = f.problem();
  const ref::Forward<double> want = ref::recurrent_forward(pr);
  const ref::Forward<float> base =
      ref::blocked_forward(ref::convert_problem<float>(pr), 64, storage_round(c.dtype));
  const lightning_dtype_t dt = to_c(c.dtype);
  const ref::Verdict vo = ref::check_tensor("o", gpu::to_host_double(f.p.o), to_double(base.o),
                                            want.o, dt, false, {c.b, c.h, c.n, c.e});
  EXPECT_TRUE(vo.pass) << vo.message;
  if (c.final_state) {
    // The state is fp32 storage; its tolerance follows the problem's dtype (rule 2).
    const ref::Verdict vs = ref::check_tensor("final_state", gpu::to_host_double(f.p.final_state),
                                              to_double(base.final_state), want.final_state, dt,
                                              false, {c.b, c.h, c.d, c.e});
    EXPECT_TRUE(vs.pass) << vs.message;
  }
}

class LightningForward : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gpu::has_device()) GTEST_SKIP() << "no CUDA device";
  }
};

class LightningForwardGrid : public LightningForward,
                             public ::testing::WithParamInterface<KernelGridParam> {};

TEST_P(LightningForwardGrid, MatchesFp64ReferenceOnRaggedLength) {
  Case c;
  c.dtype = std::get<0>(GetParam());
  c.layout = std::get<1>(GetParam());
  c.d = std::get<2>(GetParam()).first;
  c.e = std::get<2>(GetParam()).second;
  c.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  check_forward_case(c);
}

INSTANTIATE_TEST_SUITE_P(DtypesLayoutsHeadDims,
                         LightningForwardGrid,
                         kernel_grid_values(),
                         kernel_grid_name);

TEST_F(LightningForward, HandlesOneTokenAndSequencesShorterThanABlock) {
  // E = 128 with D = 128 takes the warp-specialised output pass (bf16 / fp16), E = 64 the other.
  for (std::int64_t n : {1, 2, 17, 63, 64, 65}) {
    for (DType dt : {DType::kBF16, DType::kFP32}) {
      for (std::int64_t e : {64, 128}) {
        Case c;
        c.dtype = dt;
        c.n = n;
        c.d = 128;
        c.e = e;
        check_forward_case(c);
      }
    }
  }
}

TEST_F(LightningForward, HandlesNoDecayAndStrongDecay) {
  for (float s : {0.0f, 2.0f, 12.0f}) {
    for (DType dt : {DType::kBF16, DType::kFP16, DType::kFP32}) {
      Case c;
      c.dtype = dt;
      c.s = std::vector<float>(3, s);
      c.n = 700;
      c.scale = 0.125f;
      check_forward_case(c);
    }
  }
}

TEST_F(LightningForward, HandlesAbsentStates) {
  Case c;
  c.initial_state = false;
  c.final_state = false;
  c.layout = Layout::kBNHD;
  check_forward_case(c);
}

TEST_F(LightningForward, SplitsLongSequencesIntoSegmentsCorrectly) {
  // B * H * slices is far below 4 per SM: the plan splits the sequence; ragged N, both paths.
  for (DType dt : {DType::kBF16, DType::kFP16, DType::kFP32}) {
    for (bool s0 : {false, true}) {
      Case c;
      c.dtype = dt;
      c.b = 1;
      c.h = 2;
      c.n = 9000;
      c.d = 128;
      c.e = 128;
      c.initial_state = s0;
      c.s = {0.0f, 0.05f};
      c.scale = 1.0f / 128;
      DeviceForward probe(c);
      EXPECT_GT(probe.p.workspace_bytes, 0u) << "expected the segment path";
      check_forward_case(c);
    }
  }
}

TEST_F(LightningForward, CutsFewSegmentsIntoPiecesForTheLocalStatePass) {
  // 64 (b, h) chains: two segments of 34 blocks, the local-state pass in two pieces of 17
  // (3 states per head in the workspace instead of 2); ragged N.
  for (bool s0 : {false, true}) {
    Case c;
    c.b = 1;
    c.h = 64;
    c.n = 4100;
    c.d = 128;
    c.e = 128;
    c.initial_state = s0;
    c.scale = 1.0f / 128;
    DeviceForward probe(c);
    EXPECT_EQ(probe.p.workspace_bytes, static_cast<std::size_t>(64 * 3 * 128 * 128 * 4))
        << "expected two segments, the first in two pieces";
    check_forward_case(c);
  }
}

TEST_F(LightningForward, HandlesRaggedSegmentsOnASmallShape) {
  // Small enough for compute-sanitizer: one head, two segments, a ragged last block; D = E = 128
  // takes the warp-specialised output pass from the segment's incoming state.
  struct Variant {
    DType dtype;
    std::int64_t d, e;
  };
  for (const Variant& shape : {Variant{DType::kBF16, 64, 128}, Variant{DType::kFP32, 64, 128},
                               Variant{DType::kBF16, 128, 128}}) {
    Case c;
    c.dtype = shape.dtype;
    c.b = 1;
    c.h = 1;
    c.n = 2500;
    c.d = shape.d;
    c.e = shape.e;
    c.s = {0.01f};
    DeviceForward probe(c);
    EXPECT_GT(probe.p.workspace_bytes, 0u) << "expected the segment path";
    check_forward_case(c);
  }
}

TEST_F(LightningForward, MatchesFp64At131072TokensOnTwoHeads) {
  Case c;
  c.b = 1;
  c.h = 2;
  c.n = 131072;
  c.d = 128;
  c.e = 128;
  c.scale = 1.0f / 128;
  check_forward_case(c);
}

TEST_F(LightningForward, MatchesGpuRecurrenceOracleAt131072TokensOn32Heads) {
  Case c;
  c.b = 1;
  c.h = 32;
  c.n = 131072;
  c.d = 128;
  c.e = 128;
  c.layout = Layout::kBNHD;
  c.scale = 1.0f / 128;
  DeviceForward f(c);
  // On the H200 (132 SMs) the plan takes 4 segments and the local-state pass in 4 pieces.
  if (gpu::device_info().sm_count == 132) {
    EXPECT_EQ(f.p.workspace_bytes, static_cast<std::size_t>(32 * (3 * 4 + 1) * 128 * 128 * 4));
  }
  f.run();
  DeviceBuffer o2(f.o.bytes()), sf2(f.sf.bytes());
  ForwardParams p2 = f.p;
  p2.o.data = o2.data();
  p2.final_state.data = sf2.data();
  ref::gpu::recurrent_forward(p2);
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  const auto got = gpu::to_host_double(f.p.o);
  const auto want = gpu::to_host_double(p2.o);
  const ref::ErrorStats err = ref::error_stats(got, want);
  EXPECT_EQ(err.nan_count, 0);
  EXPECT_LT(err.rel_l2, 5e-3) << "max_abs " << err.max_abs;
  const ref::ErrorStats serr =
      ref::error_stats(gpu::to_host_double(f.p.final_state), gpu::to_host_double(p2.final_state));
  EXPECT_LT(serr.rel_l2, 5e-3);
}

TEST_F(LightningForward, ChainingTheFinalStateEqualsTheLongerSequence) {
  // A whole run vs. the first 640 tokens then the rest started from their final state: at a
  // block boundary, without segments, the arithmetic is the same, so the outputs are bitwise equal.
  for (DType dt : {DType::kBF16, DType::kFP32}) {
    Case whole;
    whole.dtype = dt;
    whole.b = 4;
    whole.h = 64;  // 256 (b, h) pairs: no segments
    whole.n = 1500;
    whole.d = 64;
    whole.e = 64;
    DeviceForward f(whole);
    ASSERT_EQ(f.p.workspace_bytes, 0u);
    f.run();
    const std::int64_t n1 = 640;
    const std::size_t el = dtype_size(to_c(dt));
    // Views of the two halves of the same buffers.
    ForwardParams first = f.p, second = f.p;
    DeviceBuffer o_split(f.o.bytes()), mid(f.sf.bytes()), last(f.sf.bytes());
    first.o.data = o_split.data();
    second.o.data = o_split.data();
    for (Tensor* t : {&first.q, &first.k, &first.v, &first.o}) t->shape[2] = n1;
    for (Tensor* t : {&second.q, &second.k, &second.v, &second.o}) {
      t->shape[2] = whole.n - n1;
      t->data = static_cast<char*>(t->data) + n1 * t->stride[2] * el;
    }
    first.final_state.data = mid.data();
    second.initial_state = first.final_state;
    second.final_state.data = last.data();
    forward(first);
    forward(second);
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
    ForwardParams split_view = f.p;
    split_view.o.data = o_split.data();
    EXPECT_EQ(gpu::to_host_double(split_view.o), gpu::to_host_double(f.p.o));
    EXPECT_EQ(gpu::to_host_double(second.final_state), gpu::to_host_double(f.p.final_state));
  }
}

TEST_F(LightningForward, IsBitwiseDeterministicOverTwentyRuns) {
  for (std::int64_t n : {913, 20000}) {  // the second takes the segment path
    Case c;
    c.b = 1;
    c.h = 4;
    c.n = n;
    c.d = 128;
    c.e = 128;
    DeviceForward f(c);
    f.run();
    const auto o0 = gpu::to_host_double(f.p.o);
    const auto s0 = gpu::to_host_double(f.p.final_state);
    for (int i = 0; i < 20; ++i) {
      f.run();
      ASSERT_EQ(gpu::to_host_double(f.p.o), o0) << "run " << i << " n " << n;
      ASSERT_EQ(gpu::to_host_double(f.p.final_state), s0) << "run " << i << " n " << n;
    }
  }
}

TEST_F(LightningForward, PropagatesNanWithoutHanging) {
  Case c;
  c.n = 300;
  c.initial_state = false;
  DeviceForward f(c);
  // k at token 100 of (b 0, h 0) is NaN: every output of that head from token 100 on is NaN;
  // the other heads are unaffected.
  std::vector<double> k = gpu::to_host_double(f.p.k);
  k[100 * c.d + 5] = std::numeric_limits<double>::quiet_NaN();
  gpu::from_host_double(f.p.k, k);
  f.run();
  const auto o = gpu::to_host_double(f.p.o);
  EXPECT_FALSE(std::isnan(o[99 * c.e]));
  EXPECT_TRUE(std::isnan(o[100 * c.e]));
  EXPECT_TRUE(std::isnan(o[299 * c.e + 7]));
  EXPECT_FALSE(std::isnan(o[(c.n + 150) * c.e]));  // head 1
}

TEST_F(LightningForward, RejectsBadInputWithItsStatus) {
  Case c;
  DeviceForward f(c);
  std::vector<float> bad(c.h, 0.5f);
  bad[1] = -1.0f;
  LIGHTNING_CUDA_CHECK(cudaMemcpy(f.s.data(), bad.data(), c.h * 4, cudaMemcpyHostToDevice));
  EXPECT_EQ(lightning_forward(&f.p, nullptr), LIGHTNING_ERROR_INVALID_SLOPE);
  EXPECT_NE(std::string(lightning_last_error_message()).find("s[1]"), std::string::npos);
  bad[1] = std::numeric_limits<float>::quiet_NaN();
  LIGHTNING_CUDA_CHECK(cudaMemcpy(f.s.data(), bad.data(), c.h * 4, cudaMemcpyHostToDevice));
  EXPECT_EQ(lightning_forward(&f.p, nullptr), LIGHTNING_ERROR_INVALID_SLOPE);
  ForwardParams p = f.p;
  p.q.data = nullptr;
  EXPECT_EQ(lightning_forward(&p, nullptr), LIGHTNING_ERROR_NULL_POINTER);
  p = f.p;
  p.v.shape[3] = 96;
  p.o.shape[3] = 96;
  EXPECT_EQ(lightning_forward(&p, nullptr), LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM);

  Case long_case;
  long_case.b = 1;
  long_case.h = 1;
  long_case.n = 8192;
  DeviceForward g(long_case);
  ASSERT_GT(g.p.workspace_bytes, 0u);
  ForwardParams small = g.p;
  small.workspace_bytes = g.p.workspace_bytes - 256;
  EXPECT_EQ(lightning_forward(&small, nullptr), LIGHTNING_ERROR_WORKSPACE);
  small.workspace = nullptr;
  EXPECT_EQ(lightning_forward(&small, nullptr), LIGHTNING_ERROR_WORKSPACE);
  // Nothing was enqueued: the output is still the NaN poison.
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(std::isnan(gpu::to_host_double(g.p.o)[0]));
}

TEST_F(LightningForward, AddressesBeyondTwoToTheThirtyOneElements) {
  // [B, N, H, D] with N * H * D > 2^31: offsets of late tokens overflow 32 bits.
  Case c;
  c.b = 1;
  c.h = 32;
  c.n = 589824;  // 589824 * 32 * 128 = 2.4e9 elements per tensor
  c.d = 128;
  c.e = 128;
  c.layout = Layout::kBNHD;
  c.initial_state = false;
  c.scale = 1.0f / 128;
  DeviceForward f(c);
  f.run();
  DeviceBuffer o2(f.o.bytes());
  ForwardParams p2 = f.p;
  p2.o.data = o2.data();
  p2.final_state.data = nullptr;
  ref::gpu::recurrent_forward(p2);
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  // Compare the last 4096 tokens (all past element 2^31).
  const std::int64_t tail = 4096;
  const std::size_t el = dtype_size(to_c(c.dtype));
  Tensor a = f.p.o, b = p2.o;
  for (Tensor* t : {&a, &b}) {
    t->data = static_cast<char*>(t->data) + (c.n - tail) * t->stride[2] * el;
    t->shape[2] = tail;
  }
  ASSERT_GT((c.n - tail) * a.stride[2], std::int64_t{1} << 31);
  const ref::ErrorStats err = ref::error_stats(gpu::to_host_double(a), gpu::to_host_double(b));
  EXPECT_EQ(err.nan_count, 0);  // the NaN poison is gone: every element was written
  EXPECT_LT(err.rel_l2, 5e-3);
}

}  // namespace
}  // namespace lightning
