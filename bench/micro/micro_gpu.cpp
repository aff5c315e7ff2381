// Micro-benchmarks of the GPU kernels: lightning::forward / backward and the GPU recurrence at a
// few shapes, and context parallelism's phase 1 (state-only passes against the whole passes it
// falls back to), timed with CUDA events (manual time: the pass only, no host overhead). Skipped
// with a message where there is no device or a pass is not built. The JSON's context names the
// GPU and the tree's git sha.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <benchmark/benchmark.h>

#include <lightning/api.h>
#include <lightning/context_parallel.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#ifndef LIGHTNING_MICRO_GIT_SHA
#define LIGHTNING_MICRO_GIT_SHA "unknown"
#endif

namespace {

using lightning::gpu::DeviceBuffer;

// Provenance in the report's context (before main runs the benchmarks).
const bool kContextAdded = [] {
  benchmark::AddCustomContext("lightning_git_sha", LIGHTNING_MICRO_GIT_SHA);
  cudaDeviceProp prop{};
  if (lightning::gpu::has_device() && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    benchmark::AddCustomContext("gpu", prop.name);
  }
  return true;
}();

// B, H, N, D = E, bf16 [B, H, N, D].
struct Problem {
  Problem(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d)
      : bytes(static_cast<std::size_t>(b * h * n * d) * 2),
        q(bytes),
        k(bytes),
        v(bytes),
        o(bytes),
        dout(bytes),
        dq(bytes),
        dk(bytes),
        dv(bytes),
        s(sizeof(float) * static_cast<std::size_t>(h)) {
    auto t = [&](const DeviceBuffer& buf) {
      return lightning::make_tensor(buf.data(), lightning::DType::kBF16, lightning::Layout::kBHND,
                                    b, h, n, d);
    };
    const std::int64_t count = b * h * n * d;
    lightning::gpu::fill_uniform(q.data(), LIGHTNING_BF16, count, 1, -1, 1);
    lightning::gpu::fill_uniform(k.data(), LIGHTNING_BF16, count, 2, -1, 1);
    lightning::gpu::fill_uniform(v.data(), LIGHTNING_BF16, count, 3, -1, 1);
    lightning::gpu::fill_uniform(dout.data(), LIGHTNING_BF16, count, 4, -1, 1);
    std::vector<float> slopes(static_cast<std::size_t>(h));
    for (std::int64_t i = 0; i < h; ++i) {
      slopes[static_cast<std::size_t>(i)] = std::exp2(-8.0f * static_cast<float>(i + 1) / h);
    }
    LIGHTNING_CUDA_CHECK(cudaMemcpy(s.data(), slopes.data(), s.bytes(), cudaMemcpyHostToDevice));
    fwd.q = t(q);
    fwd.k = t(k);
    fwd.v = t(v);
    fwd.o = t(o);
    fwd.s = s.as<float>();
    fwd.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
    bwd.q = fwd.q;
    bwd.k = fwd.k;
    bwd.v = fwd.v;
    bwd.dout = t(dout);
    bwd.dq = t(dq);
    bwd.dk = t(dk);
    bwd.dv = t(dv);
    bwd.s = fwd.s;
    bwd.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
    fwd_ws = DeviceBuffer(lightning::forward_workspace_size(fwd));
    fwd.workspace = fwd_ws.data();
    fwd.workspace_bytes = fwd_ws.bytes();
    bwd_ws = DeviceBuffer(lightning::backward_workspace_size(bwd));
    bwd.workspace = bwd_ws.data();
    bwd.workspace_bytes = bwd_ws.bytes();
  }
  std::size_t bytes;
  DeviceBuffer q, k, v, o, dout, dq, dk, dv, s, fwd_ws, bwd_ws;
  lightning::ForwardParams fwd;
  lightning::BackwardParams bwd;
};

template <class Pass>
void run_timed(benchmark::State& state, std::int64_t tokens, Pass&& pass) {
  if (!lightning::gpu::has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  try {
    cudaEvent_t start, stop;
    LIGHTNING_CUDA_CHECK(cudaEventCreate(&start));
    LIGHTNING_CUDA_CHECK(cudaEventCreate(&stop));
    pass();  // warm-up, and the first error if the pass is not built
    LIGHTNING_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto _ : state) {
      LIGHTNING_CUDA_CHECK(cudaEventRecord(start));
      pass();
      LIGHTNING_CUDA_CHECK(cudaEventRecord(stop));
      LIGHTNING_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      LIGHTNING_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      state.SetIterationTime(ms / 1e3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    state.counters["tokens_per_s"] = benchmark::Counter(
        static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Args: N; B = 32k / N; H = 32; D = E = 128.
constexpr std::int64_t kTokens = 32768, kHeads = 32, kDim = 128;

void BM_LightningForward(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!lightning::gpu::has_device()) return state.SkipWithError("no CUDA device");
  Problem p(kTokens / n, kHeads, n, kDim);
  run_timed(state, kTokens, [&] { lightning::forward(p.fwd); });
}

void BM_LightningBackward(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!lightning::gpu::has_device()) return state.SkipWithError("no CUDA device");
  Problem p(kTokens / n, kHeads, n, kDim);
  run_timed(state, kTokens, [&] { lightning::backward(p.bwd); });
}

// Context parallelism's phase 1 on one rank's shard (B = 1, H = 32, N tokens, D = E = 128,
// rank 0 of 2): arg 1 = 1, the rank's own dense o (dv), so the state-only passes run with its
// memory as scratch; 0, o (dv) a token view of a longer tensor, which is not dense, so phase 1
// falls back to the whole forward (and dV pass): the cost before the state-only passes.
void cp_phase1(benchmark::State& state, bool backward) {
  const std::int64_t n = state.range(0);
  const bool dense = state.range(1) != 0;
  if (!lightning::gpu::has_device()) return state.SkipWithError("no CUDA device");
  Problem p(1, kHeads, n, kDim);
  DeviceBuffer longer(static_cast<std::size_t>(kHeads * (n + 64) * kDim) * 2);
  lightning::Tensor view = lightning::make_tensor(
      longer.data(), lightning::DType::kBF16, lightning::Layout::kBHND, 1, kHeads, n + 64, kDim);
  view.shape[2] = n;
  if (!dense) (backward ? p.bwd.dv : p.fwd.o) = view;
  const lightning::cp::Shard shard{0, 2, n};
  DeviceBuffer contribution(2 * sizeof(float) * kHeads * kDim * kDim);
  run_timed(state, n, [&] {
    if (backward) {
      lightning::cp::backward_contribution(p.bwd, shard, contribution.as<float>());
    } else {
      lightning::cp::forward_contribution(p.fwd, shard, contribution.as<float>());
    }
  });
}

void BM_CpForwardPhase1(benchmark::State& state) {
  cp_phase1(state, false);
}

void BM_CpBackwardPhase1(benchmark::State& state) {
  cp_phase1(state, true);
}

void BM_RecurrentForward(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  if (!lightning::gpu::has_device()) return state.SkipWithError("no CUDA device");
  Problem p(kTokens / n, kHeads, n, kDim);
  run_timed(state, kTokens, [&] { lightning::ref::gpu::recurrent_forward(p.fwd); });
}

}  // namespace

BENCHMARK(BM_LightningForward)
    ->RangeMultiplier(4)
    ->Range(1024, 32768)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LightningBackward)
    ->RangeMultiplier(4)
    ->Range(1024, 32768)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CpForwardPhase1)
    ->ArgsProduct({{8192, 32768}, {0, 1}})
    ->ArgNames({"n", "dense"})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CpBackwardPhase1)
    ->ArgsProduct({{8192, 32768}, {0, 1}})
    ->ArgNames({"n", "dense"})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RecurrentForward)
    ->RangeMultiplier(4)
    ->Range(1024, 32768)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
