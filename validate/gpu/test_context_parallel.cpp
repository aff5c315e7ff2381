// Context parallelism checked on one GPU (lightning/context_parallel.h): every rank's phase 1, the
// all-gather done by writing each rank's contribution into its slot, then every rank's phase 2,
// on token views of one problem's buffers; the assembled outputs and gradients checked against the
// float64 whole-sequence reference under DESIGN.md section 5, as the single-GPU kernels are. The
// collective driver runs through a one-rank exchange (a copy) and, where NCCL is built, through
// NCCL on one rank.
#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/context_parallel.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/gpu.h>
#ifdef LIGHTNING_WITH_NCCL
#include <lightning/nccl.h>
#endif

#include "gpu_test_util.h"

namespace lightning::test_util {
namespace {

// Tokens [start, start + len) of an activation view.
Tensor tokens(const Tensor& t, std::int64_t start, std::int64_t len) {
  Tensor v = t;
  v.data = static_cast<char*>(t.data) +
           start * t.stride[2] * static_cast<std::int64_t>(dtype_size(t.dtype));
  v.shape[2] = len;
  return v;
}

Tensor absent_state() {
  Tensor t{};
  t.rank = 4;
  return t;
}

// The shards of p's sequence: world ranks of shard_len tokens, the last one shorter if need be.
std::vector<cp::Shard> shards_of(std::int64_t n, int world) {
  const std::int64_t len = (n + world - 1) / world;
  std::vector<cp::Shard> out;
  for (int r = 0; r < world; ++r) out.push_back({r, world, len});
  return out;
}

std::int64_t shard_tokens(const cp::Shard& s, std::int64_t n) {
  return std::min(s.shard_len, n - s.rank * s.shard_len);
}

// Rank r's forward params: its tokens of p.fwd, the sequence's initial state on rank 0, the final
// state on the last rank.
ForwardParams forward_of_rank(const DeviceProblem& p, const cp::Shard& s) {
  const std::int64_t start = s.rank * s.shard_len, len = shard_tokens(s, p.spec.n);
  ForwardParams f;
  static_cast<lightning_fwd_params_t&>(f) = p.fwd;
  f.q = tokens(p.fwd.q, start, len);
  f.k = tokens(p.fwd.k, start, len);
  f.v = tokens(p.fwd.v, start, len);
  f.o = tokens(p.fwd.o, start, len);
  if (s.rank != 0) f.initial_state = absent_state();
  if (s.rank != s.world - 1) f.final_state = absent_state();
  return f;
}

BackwardParams backward_of_rank(const DeviceProblem& p, const cp::Shard& s) {
  const std::int64_t start = s.rank * s.shard_len, len = shard_tokens(s, p.spec.n);
  BackwardParams g;
  static_cast<lightning_bwd_params_t&>(g) = p.bwd;
  g.q = tokens(p.bwd.q, start, len);
  g.k = tokens(p.bwd.k, start, len);
  g.v = tokens(p.bwd.v, start, len);
  g.dout = tokens(p.bwd.dout, start, len);
  g.dq = tokens(p.bwd.dq, start, len);
  g.dk = tokens(p.bwd.dk, start, len);
  g.dv = tokens(p.bwd.dv, start, len);
  if (s.rank != 0) g.initial_state = g.dinitial_state = absent_state();
  if (s.rank != s.world - 1) g.dfinal_state = absent_state();
  return g;
}

// Both passes of p over `world` ranks, one after another on this GPU.
void run_sharded(DeviceProblem& p, int world) {
  const std::vector<cp::Shard> shards = shards_of(p.spec.n, world);
  std::vector<ForwardParams> fwd;
  std::vector<BackwardParams> bwd;
  std::size_t workspace = 0;
  for (const cp::Shard& s : shards) {
    fwd.push_back(forward_of_rank(p, s));
    bwd.push_back(backward_of_rank(p, s));
    workspace = std::max(
        {workspace, forward_workspace_size(fwd.back()), backward_workspace_size(bwd.back())});
  }
  gpu::DeviceBuffer ws(workspace);
  const std::int64_t count = p.state_count();
  gpu::DeviceBuffer gathered(2 * world * count * sizeof(float));
  gpu::DeviceBuffer incoming(2 * count * sizeof(float));
  for (int r = 0; r < world; ++r) {
    fwd[r].workspace = bwd[r].workspace = ws.data();
    fwd[r].workspace_bytes = bwd[r].workspace_bytes = ws.bytes();
  }
  for (int r = 0; r < world; ++r) {
    cp::forward_contribution(fwd[r], shards[r], gathered.as<float>() + r * count);
  }
  for (int r = 0; r < world; ++r) {
    cp::forward_from_gathered(fwd[r], shards[r], gathered.as<float>(), incoming.as<float>());
  }
  for (int r = 0; r < world; ++r) {
    cp::backward_contribution(bwd[r], shards[r], gathered.as<float>() + 2 * r * count);
  }
  for (int r = 0; r < world; ++r) {
    cp::backward_from_gathered(bwd[r], shards[r], gathered.as<float>(), incoming.as<float>());
  }
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
}

class ContextParallelGrid : public GpuTestWithParam<std::tuple<DType, int>> {};

TEST_P(ContextParallelGrid, ShardsOneAfterAnotherMatchTheWholeSequence) {
  ProblemSpec spec;
  spec.dtype = std::get<0>(GetParam());
  spec.b = 2;
  spec.h = 3;
  spec.n = 913;  // ragged: shards end mid-block, the last one is shorter
  spec.d = 64;
  spec.e = 128;
  const int world = std::get<1>(GetParam());
  SCOPED_TRACE(spec.name() + " world " + std::to_string(world));
  DeviceProblem p = make_device_problem(spec);
  run_sharded(p, world);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
}

INSTANTIATE_TEST_SUITE_P(DtypesWorlds,
                         ContextParallelGrid,
                         ::testing::Combine(::testing::Values(DType::kBF16, DType::kFP32),
                                            ::testing::Values(1, 2, 3, 4, 7)),
                         [](const auto& param_info) {
                           return std::string(dtype_name(to_c(std::get<0>(param_info.param)))) +
                                  "_world" + std::to_string(std::get<1>(param_info.param));
                         });

class ContextParallel : public GpuTest {};

TEST_F(ContextParallel, HandlesNoStatesAndStrongDecay) {
  ProblemSpec spec;
  spec.n = 700;
  spec.h = 2;
  spec.s = {0.0f, 2.0f};
  spec.states_in = spec.states_out = false;
  DeviceProblem p = make_device_problem(spec);
  run_sharded(p, 5);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
}

TEST_F(ContextParallel, ShardsOfA65536TokenSequenceMatchFp64) {
  ProblemSpec spec;
  spec.b = 1;
  spec.h = 2;
  spec.n = 65536;
  spec.d = spec.e = 128;
  DeviceProblem p = make_device_problem(spec);
  run_sharded(p, 8);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
}

// The collective driver with a one-rank exchange that copies.
class CopyExchange final : public cp::StateExchange {
 public:
  void all_gather(const float* send, float* recv, std::size_t count, Stream stream) override {
    LIGHTNING_CUDA_CHECK(
        cudaMemcpyAsync(recv, send, count * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
};

void run_driver(DeviceProblem& p, cp::StateExchange& exchange) {
  p.attach_workspaces();
  const cp::Shard one{0, 1, p.spec.n};
  gpu::DeviceBuffer buffer(cp::backward_exchange_bytes(p.bwd, one));
  ASSERT_GE(buffer.bytes(), cp::forward_exchange_bytes(p.fwd, one));
  cp::forward(p.fwd, one, exchange, buffer.data(), buffer.bytes());
  cp::backward(p.bwd, one, exchange, buffer.data(), buffer.bytes());
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
}

TEST_F(ContextParallel, DriverOnOneRankMatchesFp64) {
  ProblemSpec spec;
  spec.n = 300;
  DeviceProblem p = make_device_problem(spec);
  CopyExchange exchange;
  run_driver(p, exchange);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
}

TEST_F(ContextParallel, DriverRejectsASmallExchangeBuffer) {
  ProblemSpec spec;
  spec.n = 64;
  DeviceProblem p = make_device_problem(spec);
  p.attach_workspaces();
  const cp::Shard one{0, 1, spec.n};
  const std::size_t need = cp::forward_exchange_bytes(p.fwd, one);
  gpu::DeviceBuffer buffer(need);
  CopyExchange exchange;
  try {
    cp::forward(p.fwd, one, exchange, buffer.data(), need - 4);
    FAIL() << "a buffer 4 bytes short was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.status(), LIGHTNING_ERROR_WORKSPACE) << e.what();
  }
}

TEST_F(ContextParallel, NcclExchangeOnOneRankMatchesFp64) {
#ifndef LIGHTNING_WITH_NCCL
  GTEST_SKIP() << "SKIPPED: this build has no NCCL (lightning::nccl not found at configure time)";
#else
  int device = 0;
  LIGHTNING_CUDA_CHECK(cudaGetDevice(&device));
  ncclComm_t comm = nullptr;
  ASSERT_EQ(ncclCommInitAll(&comm, 1, &device), ncclSuccess);
  ProblemSpec spec;
  spec.n = 300;
  DeviceProblem p = make_device_problem(spec);
  {
    cp::NcclExchange exchange(comm);
    run_driver(p, exchange);
  }
  ncclCommDestroy(comm);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
#endif
}

}  // namespace
}  // namespace lightning::test_util
