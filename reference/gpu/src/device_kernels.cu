// Device side of the infrastructure: the seeded fill, the constant fill and the SM clock probe.
//
// fill_uniform: element i = lo + (hi - lo) * u_i, u_i = the top 24 bits of splitmix64's output at
// position i of the stream keyed by the seed (a bijective 64-bit mix of key + (i + 1) * golden
// gamma). Grid-stride loop over i, so the values depend on (seed, i) only.
#include <algorithm>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>

#include "common.cuh"

namespace lightning::gpu {
namespace {

using ::lightning::ref::gpu::detail::dispatch_dtype;
using ::lightning::ref::gpu::detail::from_float;

constexpr std::uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

__host__ __device__ __forceinline__ std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <class T>
__global__ void fill_uniform_kernel(
    T* __restrict__ data, std::int64_t count, std::uint64_t key, float lo, float width) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const std::uint64_t z = mix64(key + (static_cast<std::uint64_t>(i) + 1) * kGoldenGamma);
    const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;  // [0, 1), exact in float
    data[i] = from_float<T>(__fmaf_rn(width, u, lo));
  }
}

template <class T>
__global__ void fill_value_kernel(T* __restrict__ data, std::int64_t count, float value) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    data[i] = from_float<T>(value);
  }
}

// One thread: cycles of its SM over at least `spin_ns` of the global nanosecond timer.
__global__ void clock_probe_kernel(std::uint64_t spin_ns, long long* __restrict__ out) {
  std::uint64_t t0, t1;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  const long long c0 = clock64();
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t1));
  } while (t1 - t0 < spin_ns);
  const long long c1 = clock64();
  out[0] = c1 - c0;
  out[1] = static_cast<long long>(t1 - t0);
}

// Enough blocks to fill the device a few times over; the grid-stride loop does the rest.
unsigned grid_for(std::int64_t count, int threads) {
  const std::int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 65536));
}

}  // namespace

void fill_uniform(void* data,
                  lightning_dtype_t dtype,
                  std::int64_t count,
                  std::uint64_t seed,
                  float lo,
                  float hi,
                  cudaStream_t stream) {
  if (count <= 0) return;
  const std::uint64_t key = mix64(seed ^ 0x6c69676874696e67ull);  // salted: seed 0 is no weak key
  constexpr int kThreads = 256;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_uniform_kernel<T><<<grid_for(count, kThreads), kThreads, 0, stream>>>(
        static_cast<T*>(data), count, key, lo, hi - lo);
  });
  LIGHTNING_CHECK_LAUNCH();
}

void fill_value(
    void* data, lightning_dtype_t dtype, std::int64_t count, float value, cudaStream_t stream) {
  if (count <= 0) return;
  constexpr int kThreads = 256;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_value_kernel<T>
        <<<grid_for(count, kThreads), kThreads, 0, stream>>>(static_cast<T*>(data), count, value);
  });
  LIGHTNING_CHECK_LAUNCH();
}

int current_sm_clock_mhz() {
  DeviceBuffer out(2 * sizeof(long long));
  // A short first probe wakes the SM from idle clocks; the second one is measured. 2 ms keeps the
  // timer's granularity (up to 1 us on some parts) under 0.1%.
  clock_probe_kernel<<<1, 1>>>(200'000, out.as<long long>());
  LIGHTNING_CHECK_LAUNCH();
  clock_probe_kernel<<<1, 1>>>(2'000'000, out.as<long long>());
  LIGHTNING_CHECK_LAUNCH();
  long long host[2] = {0, 0};
  LIGHTNING_CUDA_CHECK(cudaMemcpy(host, out.data(), sizeof(host), cudaMemcpyDeviceToHost));
  if (host[1] <= 0) return 0;
  return static_cast<int>(static_cast<double>(host[0]) * 1e3 / static_cast<double>(host[1]) + 0.5);
}

}  // namespace lightning::gpu
