// Naive causal softmax attention with the N x N matrices materialised, forward and backward.
//
//   forward:   S = scale Q K^T, P = softmax_rows(S + causal mask), O = P V
//   backward:  P again; dP = dO V^T; dS = P (.) (dP - rowsum(P (.) dP)); dV = P^T dO;
//              dQ = scale dS K; dK = scale dS^T Q
// The activations are first copied to contiguous float32 [B*H, N, X] (any layout and dtype in), so
// every product is one cuBLAS strided-batched SGEMM over the B*H heads; cuBLAS runs in pedantic
// math (no TF32). Row-major X [N, c] is column-major X^T with leading dimension c, which is how the
// products map onto cuBLAS below. Row kernels: one block per score row, fixed reduction trees.
// Scratch (TrackingAllocator): 4 B*H*N^2 bytes forward (S, overwritten by P), 8 B*H*N^2 backward
// (P and dP, overwritten by dS), plus the float32 activations.
#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#include "common.cuh"

namespace lightning::ref::gpu {
namespace {

using namespace detail;  // NOLINT: the helpers of this folder

// ---------------------------------------------------------------------------------------------
// cuBLAS plumbing.

[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, int line) {
  const std::string what = std::string(__FILE__) + ":" + std::to_string(line) + ": " +
                           cublasGetStatusName(status) + ": " + cublasGetStatusString(status) +
                           " [" + expr + "]";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) {
    throw OutOfMemory(static_cast<int>(cudaErrorMemoryAllocation), what, 0);
  }
  throw CudaError(static_cast<int>(cudaErrorUnknown), what);
}

#define LIGHTNING_CUBLAS_CHECK(expr)                                 \
  do {                                                               \
    const cublasStatus_t lightning_cublas_status_ = (expr);          \
    if (lightning_cublas_status_ != CUBLAS_STATUS_SUCCESS) {         \
      throw_cublas_error(lightning_cublas_status_, #expr, __LINE__); \
    }                                                                \
  } while (0)

// One handle per (thread, device), created on first use and kept for the life of the thread:
// creating one costs milliseconds. Deliberately never destroyed: at process exit the CUDA context
// may be gone before thread-local destructors run.
cublasHandle_t cublas_handle(cudaStream_t stream) {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  int device = 0;
  LIGHTNING_CUDA_CHECK(cudaGetDevice(&device));
  cublasHandle_t& handle = handles[device];
  if (handle == nullptr) {
    LIGHTNING_CUBLAS_CHECK(cublasCreate(&handle));
    LIGHTNING_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
  }
  LIGHTNING_CUBLAS_CHECK(cublasSetStream(handle, stream));
  return handle;
}

// Row-major batched C[m_rows, n_cols] = alpha op(X) op(Y) spelled as the column-major call; see
// the call sites for the mapping of each product.
struct Gemm {
  cublasOperation_t trans_a, trans_b;
  int m, n, k;
  const float* a;
  int lda;
  long long stride_a;
  const float* b;
  int ldb;
  long long stride_b;
  float* c;
  int ldc;
  long long stride_c;
};

void run_gemm(cublasHandle_t handle, const Gemm& g, float alpha, int batch) {
  const float beta = 0.0f;
  LIGHTNING_CUBLAS_CHECK(cublasSgemmStridedBatched(
      handle, g.trans_a, g.trans_b, g.m, g.n, g.k, &alpha, g.a, g.lda, g.stride_a, g.b, g.ldb,
      g.stride_b, &beta, g.c, g.ldc, g.stride_c, batch));
}

// ---------------------------------------------------------------------------------------------
// Kernels.

constexpr int kRowThreads = 256;

// Strided [B, H, N, X] of T -> contiguous float [B*H, N, X]; one block per token row.
template <class T>
__global__ void load_rows_kernel(
    Rows in, float* __restrict__ out, std::int64_t h, std::int64_t n, int width) {
  const std::int64_t row = blockIdx.x;
  const std::int64_t bh = row / n, t = row % n;
  const T* src = static_cast<const T*>(in.data) + row_offset(in, bh / h, bh % h, t);
  for (int i = threadIdx.x; i < width; i += blockDim.x) out[row * width + i] = to_float(src[i]);
}

// Contiguous float [B*H, N, X] -> strided [B, H, N, X] of T (rounded to nearest).
template <class T>
__global__ void store_rows_kernel(
    const float* __restrict__ in, Rows out, std::int64_t h, std::int64_t n, int width) {
  const std::int64_t row = blockIdx.x;
  const std::int64_t bh = row / n, t = row % n;
  T* dst = static_cast<T*>(const_cast<void*>(out.data)) + row_offset(out, bh / h, bh % h, t);
  for (int i = threadIdx.x; i < width; i += blockDim.x) dst[i] = from_float<T>(in[row * width + i]);
}

// Deterministic block reductions over kRowThreads threads: a shuffle tree per warp, then warp 0
// over the per-warp partials. `scratch` holds kRowThreads / 32 floats.
template <class Op>
__device__ float block_reduce(float x, float* scratch, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < kRowThreads / 32 ? scratch[lane] : Op::identity();
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
    }
    if (lane == 0) scratch[0] = x;
  }
  __syncthreads();
  return scratch[0];
}

struct MaxOp {
  __device__ static float identity() { return -INFINITY; }
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ static float identity() { return 0.0f; }
  __device__ float operator()(float a, float b) const { return a + b; }
};

// Row i of a (B*H) x N x N score matrix, in place: P[i][j] = exp(S_ij - max) / sum for j <= i, 0
// beyond the diagonal.
__global__ void __launch_bounds__(kRowThreads)
    softmax_rows_kernel(float* __restrict__ scores, std::int64_t n) {
  __shared__ float scratch[kRowThreads / 32];
  const std::int64_t row = blockIdx.x;
  const std::int64_t valid = row % n + 1;  // causal: columns 0..i
  float* x = scores + row * n;
  float m = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < valid; j += kRowThreads) m = fmaxf(m, x[j]);
  m = block_reduce(m, scratch, MaxOp{});
  float sum = 0.0f;
  for (std::int64_t j = threadIdx.x; j < valid; j += kRowThreads) {
    const float e = expf(x[j] - m);
    x[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, scratch, SumOp{});
  for (std::int64_t j = threadIdx.x; j < n; j += kRowThreads) x[j] = j < valid ? x[j] / sum : 0.0f;
}

// dS = P (.) (dP - sum_j P_ij dP_ij), in place over dP; zero beyond the diagonal.
__global__ void __launch_bounds__(kRowThreads)
    softmax_grad_rows_kernel(const float* __restrict__ probs,
                             float* __restrict__ dprobs,
                             std::int64_t n) {
  __shared__ float scratch[kRowThreads / 32];
  const std::int64_t row = blockIdx.x;
  const std::int64_t valid = row % n + 1;
  const float* p = probs + row * n;
  float* dp = dprobs + row * n;
  float dot = 0.0f;
  for (std::int64_t j = threadIdx.x; j < valid; j += kRowThreads) dot = fmaf(p[j], dp[j], dot);
  dot = block_reduce(dot, scratch, SumOp{});
  for (std::int64_t j = threadIdx.x; j < n; j += kRowThreads) {
    dp[j] = j < valid ? p[j] * (dp[j] - dot) : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

void load_rows(const lightning_tensor_t& t, float* out, const Shape& shape, cudaStream_t stream) {
  const unsigned rows = grid_rows(shape.b * shape.h * shape.n);
  dispatch_dtype(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    load_rows_kernel<T>
        <<<rows, 128, 0, stream>>>(rows_of(t), out, shape.h, shape.n, static_cast<int>(t.shape[3]));
  });
  LIGHTNING_CHECK_LAUNCH();
}

void store_rows(const float* in,
                const lightning_tensor_t& t,
                const Shape& shape,
                cudaStream_t stream) {
  const unsigned rows = grid_rows(shape.b * shape.h * shape.n);
  dispatch_dtype(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    store_rows_kernel<T>
        <<<rows, 128, 0, stream>>>(in, rows_of(t), shape.h, shape.n, static_cast<int>(t.shape[3]));
  });
  LIGHTNING_CHECK_LAUNCH();
}

// Bytes of `count` float32 values, overflow-checked.
std::size_t floats(std::size_t count) {
  return checked_mul(count, sizeof(float));
}

struct Sizes {
  std::size_t scores;  // B*H*N*N
  std::size_t qk;      // B*H*N*D
  std::size_t ve;      // B*H*N*E
};

Sizes sizes_of(const Shape& s) {
  const auto bh = static_cast<std::size_t>(s.b * s.h);
  const auto n = static_cast<std::size_t>(s.n);
  return Sizes{checked_mul(checked_mul(bh, n), n),
               checked_mul(bh * n, static_cast<std::size_t>(s.d)),
               checked_mul(bh * n, static_cast<std::size_t>(s.e))};
}

// S = scale Q K^T into `scores`, then P in place.
void probabilities(cublasHandle_t handle,
                   const float* q,
                   const float* k,
                   float* scores,
                   float scale,
                   const Shape& s,
                   cudaStream_t stream) {
  const int n = static_cast<int>(s.n), d = static_cast<int>(s.d);
  const int batch = static_cast<int>(s.b * s.h);
  const long long nn = static_cast<long long>(s.n) * s.n, nd = static_cast<long long>(s.n) * s.d;
  // Column-major C = S^T (ld N) = K Q^T: A = K^T stored (D x N, ld D) transposed, B = Q^T (D x N).
  run_gemm(handle, Gemm{CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, k, d, nd, q, d, nd, scores, n, nn},
           scale, batch);
  softmax_rows_kernel<<<grid_rows(s.b * s.h * s.n), kRowThreads, 0, stream>>>(scores, s.n);
  LIGHTNING_CHECK_LAUNCH();
}

}  // namespace

std::size_t softmax_forward_scratch_bytes(const lightning_fwd_params_t& params) {
  const Sizes z = sizes_of(validate(params));
  return floats(z.scores) + floats(z.qk) * 2 + floats(z.ve) * 2;
}

std::size_t softmax_backward_scratch_bytes(const lightning_bwd_params_t& params) {
  const Sizes z = sizes_of(validate(params));
  return floats(z.scores) * 2 + floats(z.qk) * 4 + floats(z.ve) * 3;
}

void softmax_forward(const lightning_fwd_params_t& params, cudaStream_t stream) {
  const Shape s = checked_shape(params, stream, /*check_slopes=*/false);  // s is not used
  const Sizes z = sizes_of(s);
  using ::lightning::gpu::DeviceBuffer;
  DeviceBuffer scores(floats(z.scores));  // the big one first: fail before any work
  DeviceBuffer q(floats(z.qk)), k(floats(z.qk)), v(floats(z.ve)), o(floats(z.ve));
  StreamFence fence(stream);
  cublasHandle_t handle = cublas_handle(stream);

  load_rows(params.q, q.as<float>(), s, stream);
  load_rows(params.k, k.as<float>(), s, stream);
  load_rows(params.v, v.as<float>(), s, stream);
  probabilities(handle, q.as<float>(), k.as<float>(), scores.as<float>(), params.scale, s, stream);

  const int n = static_cast<int>(s.n), e = static_cast<int>(s.e);
  const int batch = static_cast<int>(s.b * s.h);
  const long long nn = static_cast<long long>(s.n) * s.n, ne = static_cast<long long>(s.n) * s.e;
  // O^T (E x N, ld E) = V^T P^T: A = V^T (E x N, ld E), B = P^T (N x N, ld N).
  run_gemm(handle,
           Gemm{CUBLAS_OP_N, CUBLAS_OP_N, e, n, n, v.as<float>(), e, ne, scores.as<float>(), n, nn,
                o.as<float>(), e, ne},
           1.0f, batch);
  store_rows(o.as<float>(), params.o, s, stream);
  fence.finish();
}

void softmax_backward(const lightning_bwd_params_t& params, cudaStream_t stream) {
  const Shape s = checked_shape(params, stream, /*check_slopes=*/false);
  const Sizes z = sizes_of(s);
  using ::lightning::gpu::DeviceBuffer;
  DeviceBuffer probs(floats(z.scores)), dprobs(floats(z.scores));
  DeviceBuffer q(floats(z.qk)), k(floats(z.qk)), v(floats(z.ve)), dout(floats(z.ve));
  DeviceBuffer dq(floats(z.qk)), dk(floats(z.qk)), dv(floats(z.ve));
  StreamFence fence(stream);
  cublasHandle_t handle = cublas_handle(stream);

  load_rows(params.q, q.as<float>(), s, stream);
  load_rows(params.k, k.as<float>(), s, stream);
  load_rows(params.v, v.as<float>(), s, stream);
  load_rows(params.dout, dout.as<float>(), s, stream);
  probabilities(handle, q.as<float>(), k.as<float>(), probs.as<float>(), params.scale, s, stream);

  const int n = static_cast<int>(s.n), d = static_cast<int>(s.d), e = static_cast<int>(s.e);
  const int batch = static_cast<int>(s.b * s.h);
  const long long nn = static_cast<long long>(s.n) * s.n;
  const long long nd = static_cast<long long>(s.n) * s.d, ne = static_cast<long long>(s.n) * s.e;
  // dP^T (N x N, ld N) = V dO^T: A = V^T (E x N, ld E) transposed, B = dO^T (E x N, ld E).
  run_gemm(handle,
           Gemm{CUBLAS_OP_T, CUBLAS_OP_N, n, n, e, v.as<float>(), e, ne, dout.as<float>(), e, ne,
                dprobs.as<float>(), n, nn},
           1.0f, batch);
  softmax_grad_rows_kernel<<<grid_rows(s.b * s.h * s.n), kRowThreads, 0, stream>>>(
      probs.as<float>(), dprobs.as<float>(), s.n);
  LIGHTNING_CHECK_LAUNCH();
  // dV^T (E x N, ld E) = dO^T P: A = dO^T (E x N, ld E), B = P^T (N x N, ld N) transposed.
  run_gemm(handle,
           Gemm{CUBLAS_OP_N, CUBLAS_OP_T, e, n, n, dout.as<float>(), e, ne, probs.as<float>(), n,
                nn, dv.as<float>(), e, ne},
           1.0f, batch);
  // dQ^T (D x N, ld D) = K^T dS^T: A = K^T (D x N, ld D), B = dS^T (N x N, ld N).
  run_gemm(handle,
           Gemm{CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, k.as<float>(), d, nd, dprobs.as<float>(), n, nn,
                dq.as<float>(), d, nd},
           params.scale, batch);
  // dK^T (D x N, ld D) = Q^T dS: A = Q^T (D x N, ld D), B = dS^T (N x N, ld N) transposed.
  run_gemm(handle,
           Gemm{CUBLAS_OP_N, CUBLAS_OP_T, d, n, n, q.as<float>(), d, nd, dprobs.as<float>(), n, nn,
                dk.as<float>(), d, nd},
           params.scale, batch);
  store_rows(dq.as<float>(), params.dq, s, stream);
  store_rows(dk.as<float>(), params.dk, s, stream);
  store_rows(dv.as<float>(), params.dv, s, stream);
  fence.finish();
}

}  // namespace lightning::ref::gpu
