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
#include <stdexcept>
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

#ifdef LIGHTNING_WITH_NCCL
// A tensor view of `from`'s memory moved to the same offset in `to` (a copy of that buffer).
Tensor rebase(Tensor t, const gpu::DeviceBuffer& from, void* to) {
  if (t.data == nullptr) return t;
  t.data = static_cast<char*>(to) + (static_cast<char*>(t.data) - from.as<char>());
  return t;
}

// Rank r's copy, on its own GPU, of one of the problem's buffers.
struct RankCopy {
  const gpu::DeviceBuffer* from = nullptr;
  gpu::DeviceBuffer to;
};

// Host bytes of `whole`, then the elements of `view` (a view into `whole`'s buffer at `base`)
// taken from `other` (the same layout, another copy of the buffer).
void take_view(std::vector<char>& whole,
               const std::vector<char>& other,
               const Tensor& view,
               const void* base) {
  const std::size_t el = dtype_size(view.dtype);
  const std::int64_t off = (static_cast<const char*>(view.data) - static_cast<const char*>(base)) /
                           static_cast<std::int64_t>(el);
  for (std::int64_t b = 0; b < view.shape[0]; ++b)
    for (std::int64_t h = 0; h < view.shape[1]; ++h)
      for (std::int64_t n = 0; n < view.shape[2]; ++n)
        for (std::int64_t d = 0; d < view.shape[3]; ++d) {
          const std::int64_t i = off + b * view.stride[0] + h * view.stride[1] +
                                 n * view.stride[2] + d * view.stride[3];
          std::copy_n(other.begin() + i * el, el, whole.begin() + i * el);
        }
}

std::vector<char> host_bytes(const void* data, std::size_t bytes) {
  std::vector<char> out(bytes);
  LIGHTNING_CUDA_CHECK(cudaMemcpy(out.data(), data, bytes, cudaMemcpyDefault));
  return out;
}

// The collective driver with every rank on its own GPU, in its own thread, exchanging through
// NCCL: the problem lives on GPU 0, rank r > 0 runs on copies of its tensors on GPU r, and its
// shard of the outputs (and, on the last rank, the final state) is copied back to be checked.
void run_on_gpus(DeviceProblem& p, int world) {
  const std::vector<cp::Shard> shards = shards_of(p.spec.n, world);
  std::vector<ForwardParams> fwd;
  std::vector<BackwardParams> bwd;
  for (const cp::Shard& s : shards) {
    fwd.push_back(forward_of_rank(p, s));
    bwd.push_back(backward_of_rank(p, s));
  }
  std::vector<int> devices(world);
  for (int r = 0; r < world; ++r) devices[r] = r;
  std::vector<ncclComm_t> comms(world);
  ASSERT_EQ(ncclCommInitAll(comms.data(), world, devices.data()), ncclSuccess);

  // Per rank: copies of the problem's buffers (rank 0 uses them in place), workspace, exchange.
  const std::vector<const gpu::DeviceBuffer*> shared = {
      &p.q, &p.k, &p.v, &p.o, &p.dout, &p.dq, &p.dk, &p.dv, &p.s, &p.final_state, &p.dfinal_state};
  std::vector<std::vector<RankCopy>> copies(world);
  // Rank r's copy of b (r > 0).
  auto copy_of = [&](int r, const gpu::DeviceBuffer& b) -> const gpu::DeviceBuffer& {
    for (const RankCopy& c : copies[r]) {
      if (c.from == &b) return c.to;
    }
    throw std::logic_error("no copy of that buffer");
  };
  std::vector<gpu::DeviceBuffer> workspace(world), exchange_buffer(world);
  for (int r = 0; r < world; ++r) {
    LIGHTNING_CUDA_CHECK(cudaSetDevice(r));
    if (r > 0) {
      for (const gpu::DeviceBuffer* b : shared) {
        RankCopy c{b, gpu::DeviceBuffer(b->bytes())};
        if (b->bytes() > 0) {
          LIGHTNING_CUDA_CHECK(cudaMemcpyPeer(c.to.data(), r, b->data(), 0, b->bytes()));
        }
        copies[r].push_back(std::move(c));
      }
      auto moved = [&](const Tensor& t, const gpu::DeviceBuffer& b) {
        return rebase(t, b, copy_of(r, b).data());
      };
      fwd[r].q = moved(fwd[r].q, p.q);
      fwd[r].k = moved(fwd[r].k, p.k);
      fwd[r].v = moved(fwd[r].v, p.v);
      fwd[r].o = moved(fwd[r].o, p.o);
      fwd[r].final_state = moved(fwd[r].final_state, p.final_state);
      bwd[r].q = moved(bwd[r].q, p.q);
      bwd[r].k = moved(bwd[r].k, p.k);
      bwd[r].v = moved(bwd[r].v, p.v);
      bwd[r].dout = moved(bwd[r].dout, p.dout);
      bwd[r].dq = moved(bwd[r].dq, p.dq);
      bwd[r].dk = moved(bwd[r].dk, p.dk);
      bwd[r].dv = moved(bwd[r].dv, p.dv);
      bwd[r].dfinal_state = moved(bwd[r].dfinal_state, p.dfinal_state);
      fwd[r].s = bwd[r].s = copy_of(r, p.s).as<float>();
    }
    workspace[r] = gpu::DeviceBuffer(
        std::max(forward_workspace_size(fwd[r]), backward_workspace_size(bwd[r])));
    fwd[r].workspace = bwd[r].workspace = workspace[r].data();
    fwd[r].workspace_bytes = bwd[r].workspace_bytes = workspace[r].bytes();
    exchange_buffer[r] =
        gpu::DeviceBuffer(std::max(cp::forward_exchange_bytes(fwd[r], shards[r]),
                                   cp::backward_exchange_bytes(bwd[r], shards[r])));
  }

  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        LIGHTNING_CUDA_CHECK(cudaSetDevice(r));
        cp::NcclExchange exchange(comms[r]);
        cp::forward(fwd[r], shards[r], exchange, exchange_buffer[r].data(),
                    exchange_buffer[r].bytes());
        cp::backward(bwd[r], shards[r], exchange, exchange_buffer[r].data(),
                     exchange_buffer[r].bytes());
        LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (ncclComm_t c : comms) ncclCommDestroy(c);
  LIGHTNING_CUDA_CHECK(cudaSetDevice(0));
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;

  // Every rank's shard of o, dq, dk, dv back into the problem's buffers (views of the problem's
  // buffers say which elements), the final state from the last rank.
  struct Output {
    const gpu::DeviceBuffer* buffer;
    Tensor ForwardParams::*fwd_view;
    Tensor BackwardParams::*bwd_view;
  };
  const std::vector<Output> outputs = {{&p.o, &ForwardParams::o, nullptr},
                                       {&p.dq, nullptr, &BackwardParams::dq},
                                       {&p.dk, nullptr, &BackwardParams::dk},
                                       {&p.dv, nullptr, &BackwardParams::dv}};
  for (const Output& out : outputs) {
    std::vector<char> whole = host_bytes(out.buffer->data(), out.buffer->bytes());
    for (int r = 1; r < world; ++r) {
      const Tensor view = out.fwd_view ? forward_of_rank(p, shards[r]).*out.fwd_view
                                       : backward_of_rank(p, shards[r]).*out.bwd_view;
      take_view(whole, host_bytes(copy_of(r, *out.buffer).data(), out.buffer->bytes()), view,
                out.buffer->data());
    }
    LIGHTNING_CUDA_CHECK(
        cudaMemcpy(out.buffer->data(), whole.data(), whole.size(), cudaMemcpyHostToDevice));
  }
  if (world > 1 && p.final_state.bytes() > 0) {
    LIGHTNING_CUDA_CHECK(cudaMemcpyPeer(p.final_state.data(), 0,
                                        copy_of(world - 1, p.final_state).data(), world - 1,
                                        p.final_state.bytes()));
  }
  // Rank r's copies are freed on their own device.
  for (int r = 1; r < world; ++r) {
    LIGHTNING_CUDA_CHECK(cudaSetDevice(r));
    copies[r].clear();
    workspace[r].reset();
    exchange_buffer[r].reset();
  }
  LIGHTNING_CUDA_CHECK(cudaSetDevice(0));
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
