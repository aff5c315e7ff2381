// Micro-benchmarks of the GPU kernels: lightning::forward / backward and the GPU recurrence at a
// few shapes, timed with CUDA events (manual time: the pass only, no host overhead). Skipped with
// a message where there is no device or a pass is not built.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <benchmark/benchmark.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

namespace {

using lightning::gpu::DeviceBuffer;

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
BENCHMARK(BM_RecurrentForward)
    ->RangeMultiplier(4)
    ->Range(1024, 32768)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
