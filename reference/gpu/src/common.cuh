// Device helpers shared by the GPU references: storage-dtype loads and stores, the dtype switch,
// and the compensated (error-free) float32 state update the recurrences use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/lightning.h>

namespace lightning::ref::gpu::detail {

template <class T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// Round to nearest even into the storage type.
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

template <class T>
struct TypeTag {
  using type = T;
};

// One switch over the storage dtype: f(TypeTag<T>{}).
template <class F>
decltype(auto) dispatch_dtype(lightning_dtype_t dtype, F&& f) {
  switch (dtype) {
    case LIGHTNING_BF16:
      return f(TypeTag<__nv_bfloat16>{});
    case LIGHTNING_FP16:
      return f(TypeTag<__half>{});
    case LIGHTNING_FP32:
      return f(TypeTag<float>{});
  }
  throw std::invalid_argument("lightning::ref::gpu: unknown dtype code " +
                              std::to_string(static_cast<int>(dtype)));
}

// The rows of an activation view [B, H, N, X] (last axis contiguous): strides in elements.
struct Rows {
  const void* data = nullptr;
  std::int64_t stride_b = 0, stride_h = 0, stride_n = 0;
};

inline Rows rows_of(const lightning_tensor_t& t) {
  return Rows{t.data, t.stride[0], t.stride[1], t.stride[2]};
}

__host__ __device__ __forceinline__ std::int64_t row_offset(const Rows& r,
                                                            std::int64_t b,
                                                            std::int64_t h,
                                                            std::int64_t n) {
  return b * r.stride_b + h * r.stride_h + n * r.stride_n;
}

// The decay lambda = exp(-s) as an unevaluated float sum hi + lo, from a double exp: a float
// lambda alone is off by up to 6e-8 relative, and lambda^t carries t times that (1e-4 relative at
// t = 2000, more than the fp32 tolerance of DESIGN.md rule 2).
struct Decay {
  float hi, lo;
};

__device__ __forceinline__ Decay make_decay(float s) {
  const double lambda = exp(-static_cast<double>(s));
  const float hi = static_cast<float>(lambda);
  return Decay{hi, static_cast<float>(lambda - static_cast<double>(hi))};
}

// x <- lambda * x + a * b on a state element held as an unevaluated sum x = hi + lo (float32
// arithmetic throughout, no double). lambda * hi is split exactly (product + fma remainder), the
// small terms are gathered in one fma chain, and the sum is renormalised with TwoSum (Knuth: exact
// for any magnitudes). The intrinsics keep nvcc from contracting the error-free steps into fmas.
// Why: a plain float recurrence loses eps * sqrt(t) relative per state element; on 913 tokens with
// s = 0 its final state is 6x further from fp64 than the blocked float computation (the baseline
// of DESIGN.md rule 1), and at N = 16k with weak decay its rel_l2 is 1e-4. Compensated, the state
// stays within a few ulps of the fp64 recurrence at any N (simulated on the host at N <= 16k).
__device__ __forceinline__ void compensated_update(
    float& hi, float& lo, Decay decay, float a, float b) {
  const float p = __fmul_rn(decay.hi, hi);
  const float p_err = __fmaf_rn(decay.hi, hi, -p);
  const float y = __fmaf_rn(a, b, __fmaf_rn(decay.hi, lo, __fmaf_rn(decay.lo, hi, p_err)));
  const float sum = __fadd_rn(p, y);
  const float y_part = __fsub_rn(sum, p);
  const float p_part = __fsub_rn(sum, y_part);
  lo = __fadd_rn(__fsub_rn(p, p_part), __fsub_rn(y, y_part));
  hi = sum;
}

// Validate params (lightning::validate) and, unless the caller opted out with
// LIGHTNING_FLAG_SKIP_SLOPE_CHECK, the values of s (copied to the host: synchronizes `stream`).
template <class Params>
::lightning::Shape checked_shape(const Params& params,
                                 cudaStream_t stream,
                                 bool check_slopes = true) {
  const ::lightning::Shape shape = ::lightning::validate(params);
  if (check_slopes && (params.flags & LIGHTNING_FLAG_SKIP_SLOPE_CHECK) == 0u) {
    std::vector<float> s_host(static_cast<std::size_t>(shape.h));
    LIGHTNING_CUDA_CHECK(cudaMemcpyAsync(s_host.data(), params.s, s_host.size() * sizeof(float),
                                         cudaMemcpyDeviceToHost, stream));
    LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream));
    ::lightning::validate_slopes(s_host.data(), shape.h);
  }
  return shape;
}

// Waits for `stream` when it goes out of scope, so scratch declared before it is freed only after
// the kernels that use it are done, on the error path too. The normal path should still call
// finish() to see the errors.
class StreamFence {
 public:
  explicit StreamFence(cudaStream_t stream) : stream_(stream) {}
  ~StreamFence() {
    if (!finished_) cudaStreamSynchronize(stream_);
  }
  void finish() {
    finished_ = true;
    LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  StreamFence(const StreamFence&) = delete;
  StreamFence& operator=(const StreamFence&) = delete;

 private:
  cudaStream_t stream_;
  bool finished_ = false;
};

// a * b for sizes, throwing OutOfMemory when the product passes 2^63 bytes (no device has that).
inline std::size_t checked_mul(std::size_t a, std::size_t b) {
  if (a != 0 && b > (std::size_t{1} << 63) / a) {
    throw OutOfMemory(static_cast<int>(cudaErrorMemoryAllocation),
                      "lightning::ref::gpu: scratch size overflows 64 bits", SIZE_MAX);
  }
  return a * b;
}

inline unsigned grid_rows(std::int64_t rows) {
  if (rows > 0x7fffffff) {
    throw InvalidArgument(LIGHTNING_ERROR_INVALID_VALUE,
                          "lightning::ref::gpu: " + std::to_string(rows) +
                              " rows exceed one grid dimension (2^31 - 1)");
  }
  return static_cast<unsigned>(rows);
}

}  // namespace lightning::ref::gpu::detail
