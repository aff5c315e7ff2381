// Context parallelism checked on one GPU (lightning/context_parallel.h): every rank's phase 1, the
// all-gather done by writing each rank's contribution into its slot, then every rank's phase 2,
// on token views of one problem's buffers; the assembled outputs and gradients checked against the
// float64 whole-sequence reference under DESIGN.md section 5, as the single-GPU kernels are. The
// collective driver runs through a one-rank exchange (a copy) and, where NCCL is built, through
// NCCL on one rank.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
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

// ---- ranks with tensors of their own ----------------------------------------------------------
// What context parallelism meets in use: every rank holds its shard in dense tensors of its own
// (phase 1 may then use o's, or dv's, memory as scratch for a state-only pass; the token views
// above never allow that). The problem lives on GPU 0; each rank's shard is copied into buffers
// on the rank's GPU and its outputs copied back for the checks.

// The offset of element (b, h, n, d) of t, in elements from t.data.
std::int64_t element_offset(
    const Tensor& t, std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d) {
  return b * t.stride[0] + h * t.stride[1] + n * t.stride[2] + d * t.stride[3];
}

std::vector<char> host_bytes(const void* data, std::size_t bytes) {
  std::vector<char> out(bytes);
  if (bytes > 0) LIGHTNING_CUDA_CHECK(cudaMemcpy(out.data(), data, bytes, cudaMemcpyDefault));
  return out;
}

// Tokens [start, start + shard.shape[2]) of `whole` (host bytes of tensor `w`) to or from the
// host bytes of the dense shard tensor `shard`.
void move_tokens(std::vector<char>& whole,
                 const Tensor& w,
                 std::vector<char>& part,
                 const Tensor& shard,
                 std::int64_t start,
                 bool into_part) {
  const std::size_t el = dtype_size(w.dtype);
  for (std::int64_t b = 0; b < shard.shape[0]; ++b)
    for (std::int64_t h = 0; h < shard.shape[1]; ++h)
      for (std::int64_t n = 0; n < shard.shape[2]; ++n)
        for (std::int64_t d = 0; d < shard.shape[3]; ++d) {
          char* x = whole.data() + element_offset(w, b, h, start + n, d) * el;
          char* y = part.data() + element_offset(shard, b, h, n, d) * el;
          if (into_part) {
            std::copy_n(x, el, y);
          } else {
            std::copy_n(y, el, x);
          }
        }
}

struct RankTensors {
  int device = 0;
  cp::Shard shard;
  std::int64_t start = 0;
  gpu::DeviceBuffer q, k, v, o, dout, dq, dk, dv, s, states, workspace, exchange;
  ForwardParams fwd;
  BackwardParams bwd;
};

// Rank `shard.rank`'s own tensors on `device`: its tokens of p in dense buffers of p's layout,
// the sequence's states on the ranks that take them (copies of p's).
void make_rank(RankTensors& r, const DeviceProblem& p, const cp::Shard& shard, int device) {
  r.device = device;
  r.shard = shard;
  r.start = shard.rank * shard.shard_len;
  const std::int64_t len = shard_tokens(shard, p.spec.n);
  const ProblemSpec& sp = p.spec;
  LIGHTNING_CUDA_CHECK(cudaSetDevice(device));
  static_cast<lightning_fwd_params_t&>(r.fwd) = p.fwd;
  static_cast<lightning_bwd_params_t&>(r.bwd) = p.bwd;
  auto own = [&](gpu::DeviceBuffer& buf, const Tensor& whole, std::int64_t width, bool input) {
    const std::int64_t elements = sp.b * sp.h * len * width;
    const std::size_t bytes = static_cast<std::size_t>(elements) * dtype_size(whole.dtype);
    buf = gpu::DeviceBuffer(bytes);
    const Tensor t = make_tensor(buf.data(), sp.dtype, sp.layout, sp.b, sp.h, len, width);
    if (!input) {
      // Outputs start as NaN, as the problem's do: an element left unwritten fails the checks.
      gpu::fill_value(buf.data(), to_c(sp.dtype), elements,
                      std::numeric_limits<float>::quiet_NaN());
      LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
      return t;
    }
    std::vector<char> whole_host =
        host_bytes(whole.data, static_cast<std::size_t>(numel(whole)) * dtype_size(whole.dtype));
    std::vector<char> part(bytes);
    move_tokens(whole_host, whole, part, t, r.start, true);
    LIGHTNING_CUDA_CHECK(cudaMemcpy(buf.data(), part.data(), bytes, cudaMemcpyHostToDevice));
    return t;
  };
  r.fwd.q = r.bwd.q = own(r.q, p.fwd.q, sp.d, true);
  r.fwd.k = r.bwd.k = own(r.k, p.fwd.k, sp.d, true);
  r.fwd.v = r.bwd.v = own(r.v, p.fwd.v, sp.e, true);
  r.bwd.dout = own(r.dout, p.bwd.dout, sp.e, true);
  r.fwd.o = own(r.o, p.fwd.o, sp.e, false);
  r.bwd.dq = own(r.dq, p.bwd.dq, sp.d, false);
  r.bwd.dk = own(r.dk, p.bwd.dk, sp.d, false);
  r.bwd.dv = own(r.dv, p.bwd.dv, sp.e, false);
  r.s = gpu::DeviceBuffer(p.s.bytes());
  LIGHTNING_CUDA_CHECK(cudaMemcpy(r.s.data(), p.s.data(), p.s.bytes(), cudaMemcpyDefault));
  r.fwd.s = r.bwd.s = r.s.as<float>();
  // States, [4][B, H, D, E]: initial, final, dS_final, dS0 (on the ranks that take them).
  const std::int64_t count = p.state_count();
  r.states = gpu::DeviceBuffer(4 * count * sizeof(float));
  float* st = r.states.as<float>();
  const bool first = shard.rank == 0, last = shard.rank == shard.world - 1;
  const Tensor none = absent_state();
  auto state_in = [&](const gpu::DeviceBuffer& from, float* to) {
    if (from.bytes() == 0) return none;
    LIGHTNING_CUDA_CHECK(cudaMemcpy(to, from.data(), from.bytes(), cudaMemcpyDefault));
    return make_state(to, sp.b, sp.h, sp.d, sp.e);
  };
  auto state_out = [&](const gpu::DeviceBuffer& like, float* to) {
    return like.bytes() == 0 ? none : make_state(to, sp.b, sp.h, sp.d, sp.e);
  };
  r.fwd.initial_state = r.bwd.initial_state = first ? state_in(p.initial_state, st) : none;
  r.fwd.final_state = last ? state_out(p.final_state, st + count) : none;
  r.bwd.dfinal_state = last ? state_in(p.dfinal_state, st + 2 * count) : none;
  r.bwd.dinitial_state = first ? state_out(p.dinitial_state, st + 3 * count) : none;
  r.workspace =
      gpu::DeviceBuffer(std::max(forward_workspace_size(r.fwd), backward_workspace_size(r.bwd)));
  r.fwd.workspace = r.bwd.workspace = r.workspace.data();
  r.fwd.workspace_bytes = r.bwd.workspace_bytes = r.workspace.bytes();
  r.exchange = gpu::DeviceBuffer(std::max(cp::forward_exchange_bytes(r.fwd, shard),
                                          cp::backward_exchange_bytes(r.bwd, shard)));
}

// Every rank's o, dq, dk, dv into the problem's buffers, the final state from the last rank and
// dS0 from the first; then the rank's buffers freed on its own GPU.
void gather_outputs(DeviceProblem& p, std::vector<RankTensors>& ranks) {
  LIGHTNING_CUDA_CHECK(cudaSetDevice(0));
  const std::int64_t count = p.state_count();
  struct Output {
    const gpu::DeviceBuffer* whole;
    Tensor whole_view;
    gpu::DeviceBuffer RankTensors::*part;
    Tensor ForwardParams::*fwd_view;
    Tensor BackwardParams::*bwd_view;
  };
  const std::vector<Output> outputs = {
      {&p.o, p.fwd.o, &RankTensors::o, &ForwardParams::o, nullptr},
      {&p.dq, p.bwd.dq, &RankTensors::dq, nullptr, &BackwardParams::dq},
      {&p.dk, p.bwd.dk, &RankTensors::dk, nullptr, &BackwardParams::dk},
      {&p.dv, p.bwd.dv, &RankTensors::dv, nullptr, &BackwardParams::dv}};
  for (const Output& out : outputs) {
    std::vector<char> whole = host_bytes(out.whole->data(), out.whole->bytes());
    for (RankTensors& r : ranks) {
      const gpu::DeviceBuffer& part = r.*out.part;
      std::vector<char> host = host_bytes(part.data(), part.bytes());
      const Tensor view = out.fwd_view ? r.fwd.*out.fwd_view : r.bwd.*out.bwd_view;
      move_tokens(whole, out.whole_view, host, view, r.start, false);
    }
    LIGHTNING_CUDA_CHECK(
        cudaMemcpy(out.whole->data(), whole.data(), whole.size(), cudaMemcpyHostToDevice));
  }
  const std::size_t state_bytes = static_cast<std::size_t>(count) * sizeof(float);
  if (p.final_state.bytes() > 0) {
    LIGHTNING_CUDA_CHECK(cudaMemcpy(p.final_state.data(), ranks.back().states.as<float>() + count,
                                    state_bytes, cudaMemcpyDefault));
  }
  if (p.dinitial_state.bytes() > 0) {
    LIGHTNING_CUDA_CHECK(cudaMemcpy(p.dinitial_state.data(),
                                    ranks.front().states.as<float>() + 3 * count, state_bytes,
                                    cudaMemcpyDefault));
  }
  for (RankTensors& r : ranks) {
    LIGHTNING_CUDA_CHECK(cudaSetDevice(r.device));
    r = RankTensors{};
  }
  LIGHTNING_CUDA_CHECK(cudaSetDevice(0));
}

// Every rank's phases one after another on GPU 0, each rank with tensors of its own.
void run_own_tensors(DeviceProblem& p, int world) {
  const std::vector<cp::Shard> shards = shards_of(p.spec.n, world);
  std::vector<RankTensors> ranks(world);
  for (int r = 0; r < world; ++r) make_rank(ranks[r], p, shards[r], 0);
  const std::int64_t count = p.state_count();
  gpu::DeviceBuffer gathered(2 * world * count * sizeof(float));
  gpu::DeviceBuffer incoming(2 * count * sizeof(float));
  for (RankTensors& r : ranks) {
    cp::forward_contribution(r.fwd, r.shard, gathered.as<float>() + r.shard.rank * count);
  }
  for (RankTensors& r : ranks) {
    cp::forward_from_gathered(r.fwd, r.shard, gathered.as<float>(), incoming.as<float>());
  }
  for (RankTensors& r : ranks) {
    cp::backward_contribution(r.bwd, r.shard, gathered.as<float>() + 2 * r.shard.rank * count);
  }
  for (RankTensors& r : ranks) {
    cp::backward_from_gathered(r.bwd, r.shard, gathered.as<float>(), incoming.as<float>());
  }
  LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
  gather_outputs(p, ranks);
}

// Phase 1 takes state-only passes with o's (dv's) memory as scratch wherever it holds two states
// ([B, H, len, E] elements against 2 [B, H, D, E] floats): here bf16 at world 1 (5 pieces) and 2
// (2 pieces) and fp32 at every world; bf16 at world 5 (183 tokens a shard) runs the whole passes.
// D = E = 128 over 2 ranks of 8142 tokens takes 26 pieces, the last one short.
TEST_F(ContextParallel, RanksWithTensorsOfTheirOwnMatchFp64) {
  for (DType dt : {DType::kBF16, DType::kFP32}) {
    for (int world : {1, 2, 5}) {
      ProblemSpec spec;
      spec.dtype = dt;
      spec.layout = world == 2 ? Layout::kBNHD : Layout::kBHND;
      spec.b = 2;
      spec.h = 3;
      spec.n = 913;
      spec.d = 64;
      spec.e = 128;
      SCOPED_TRACE(spec.name() + " world " + std::to_string(world));
      DeviceProblem p = make_device_problem(spec);
      run_own_tensors(p, world);
      EXPECT_TRUE(check_forward(p));
      EXPECT_TRUE(check_backward(p));
    }
  }
  ProblemSpec spec;
  spec.b = 1;
  spec.h = 2;
  spec.n = 16384 - 100;
  spec.d = spec.e = 128;
  SCOPED_TRACE(spec.name() + " world 2");
  DeviceProblem p = make_device_problem(spec);
  run_own_tensors(p, 2);
  EXPECT_TRUE(check_forward(p));
  EXPECT_TRUE(check_backward(p));
}

#ifdef LIGHTNING_WITH_NCCL
// The collective driver with every rank on its own GPU, in its own thread, exchanging through
// NCCL.
void run_on_gpus(DeviceProblem& p, int world) {
  const std::vector<cp::Shard> shards = shards_of(p.spec.n, world);
  std::vector<RankTensors> ranks(world);
  for (int r = 0; r < world; ++r) make_rank(ranks[r], p, shards[r], r);
  std::vector<int> devices(world);
  for (int r = 0; r < world; ++r) devices[r] = r;
  std::vector<ncclComm_t> comms(world);
  ASSERT_EQ(ncclCommInitAll(comms.data(), world, devices.data()), ncclSuccess);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        RankTensors& t = ranks[r];
        LIGHTNING_CUDA_CHECK(cudaSetDevice(t.device));
        cp::NcclExchange exchange(comms[r]);
        cp::forward(t.fwd, t.shard, exchange, t.exchange.data(), t.exchange.bytes());
        cp::backward(t.bwd, t.shard, exchange, t.exchange.data(), t.exchange.bytes());
        LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (ncclComm_t c : comms) ncclCommDestroy(c);
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  gather_outputs(p, ranks);
}
#endif

// Every GPU of the machine a rank (two at least), the shards ragged.
TEST_F(ContextParallel, NcclRanksOnSeparateGpusMatchFp64) {
#ifndef LIGHTNING_WITH_NCCL
  GTEST_SKIP() << "SKIPPED: this build has no NCCL (lightning::nccl not found at configure time)";
#else
  const int devices = gpu::device_count();
  if (devices < 2) GTEST_SKIP() << "SKIPPED: one GPU here; ranks on separate GPUs need two";
  setenv("NCCL_NVLS_ENABLE", "0", 0);  // NVLink multicast stays off (the hosts are shared)
  for (DType dt : {DType::kBF16, DType::kFP32}) {
    for (Layout layout : {Layout::kBHND, Layout::kBNHD}) {
      ProblemSpec spec;
      spec.dtype = dt;
      spec.layout = layout;
      spec.b = 2;
      spec.h = 3;
      spec.n = 913;
      spec.d = 64;
      spec.e = 128;
      SCOPED_TRACE(spec.name() + " over " + std::to_string(devices) + " GPUs");
      DeviceProblem p = make_device_problem(spec);
      run_on_gpus(p, devices);
      EXPECT_TRUE(check_forward(p));
      EXPECT_TRUE(check_backward(p));
    }
  }
#endif
}

}  // namespace
}  // namespace lightning::test_util
