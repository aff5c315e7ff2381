// Cumsum linear attention: the naive form that materialises every token's decayed prefix state.
//
//   forward:   S_t = lambda S_{t-1} + k_t^T v_t  for all t (scan, into scratch [B*H, N, D, E]),
//              o_t = scale q_t S_t, final state S_{N-1}
//   backward:  S_t again (scan), dQ_t = scale dO_t S_t^T; then in the same scratch
//              dS_t = lambda dS_{t+1} + scale q_t^T dO_t from dS_final (reverse scan),
//              dK_t = v_t dS_t^T, dV_t = k_t dS_t, dS0 = lambda dS_0
// Scan: one thread per state element (b, h, d, e), sequential over t, compensated float32
// (detail::compensated_update); stores coalesced along e. Contractions: one block per token row.
// Memory: 4 B * H * N * D * E bytes of scratch, the cost the paper's lightning form avoids.
#include <cstdint>

#include <cuda_runtime.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#include "common.cuh"

namespace lightning::ref::gpu {
namespace {

using namespace detail;  // NOLINT: the helpers of this folder

struct StateStrides {
  float* data = nullptr;  // [B, H, D, E] fp32; nullptr: absent
  std::int64_t stride_b = 0, stride_h = 0, stride_d = 0, stride_e = 0;
};

StateStrides strides_of(const lightning_tensor_t& t) {
  return StateStrides{static_cast<float*>(t.data), t.stride[0], t.stride[1], t.stride[2],
                      t.stride[3]};
}

struct ScanParams {
  Rows a;  // [B, H, N, D]: k (forward) or q (reverse, times alpha = scale)
  Rows b;  // [B, H, N, E]: v (forward) or dO (reverse)
  float alpha;
  const float* s;
  std::int64_t h, n, d, e;
  bool reverse;
  float* states;      // [B * H, N, D, E]
  StateStrides init;  // S0 (forward) or dS_final (reverse)
  StateStrides fin;   // final state (forward) or dS0 (reverse, after the last decay)
};

constexpr int kScanThreads = 256;

template <class T>
__global__ void __launch_bounds__(kScanThreads) scan_kernel(const __grid_constant__ ScanParams p) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.y) * kScanThreads + threadIdx.x;
  if (idx >= p.d * p.e) return;
  const std::int64_t bh = blockIdx.x;
  const std::int64_t b = bh / p.h, h = bh % p.h;
  const std::int64_t d = idx / p.e, e = idx % p.e;
  const Decay decay = make_decay(p.s[h]);
  const std::int64_t state_offset_bh = b * p.init.stride_b + h * p.init.stride_h;
  float hi =
      p.init.data ? p.init.data[state_offset_bh + d * p.init.stride_d + e * p.init.stride_e] : 0.0f;
  float lo = 0.0f;
  const T* a_row = static_cast<const T*>(p.a.data) + row_offset(p.a, b, h, 0) + d;
  const T* b_row = static_cast<const T*>(p.b.data) + row_offset(p.b, b, h, 0) + e;
  float* out = p.states + bh * p.n * p.d * p.e + idx;
  Decay step_decay = p.reverse ? Decay{1.0f, 0.0f} : decay;
#pragma unroll 4
  for (std::int64_t step = 0; step < p.n; ++step) {
    const std::int64_t t = p.reverse ? p.n - 1 - step : step;
    const float av = p.alpha * to_float(a_row[t * p.a.stride_n]);
    const float bv = to_float(b_row[t * p.b.stride_n]);
    compensated_update(hi, lo, step_decay, av, bv);
    out[t * p.d * p.e] = hi + lo;
    step_decay = decay;
  }
  if (p.reverse) compensated_update(hi, lo, decay, 0.0f, 0.0f);  // dS0 = lambda dS_0
  if (p.fin.data) {
    p.fin.data[b * p.fin.stride_b + h * p.fin.stride_h + d * p.fin.stride_d + e * p.fin.stride_e] =
        hi + lo;
  }
}

// out_t[e] = alpha sum_d x_t[d] M_t[d][e]  (o from q and S, dV from k and dS). Block: one token,
// one thread per e.
template <class T>
__global__ void contract_rows_kernel(Rows x,
                                     Rows out,
                                     const float* __restrict__ states,
                                     float alpha,
                                     std::int64_t h,
                                     std::int64_t n,
                                     int d_dim,
                                     int e_dim) {
  __shared__ float x_s[128];
  const std::int64_t row = blockIdx.x;  // bh * n + t
  const std::int64_t bh = row / n, t = row % n;
  const std::int64_t b = bh / h, hh = bh % h;
  const T* x_row = static_cast<const T*>(x.data) + row_offset(x, b, hh, t);
  for (int i = threadIdx.x; i < d_dim; i += blockDim.x) x_s[i] = to_float(x_row[i]);
  __syncthreads();
  const int e = threadIdx.x;
  if (e >= e_dim) return;
  const float* m = states + row * d_dim * e_dim + e;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int d = 0; d < d_dim; d += 4) {
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[r] = fmaf(x_s[d + r], m[(d + r) * e_dim], acc[r]);
  }
  T* out_row = static_cast<T*>(const_cast<void*>(out.data)) + row_offset(out, b, hh, t);
  out_row[e] = from_float<T>(alpha * ((acc[0] + acc[1]) + (acc[2] + acc[3])));
}

// out_t[d] = alpha sum_e y_t[e] M_t[d][e]  (dQ from dO and S, dK from v and dS). Block: one token,
// 4 warps, a warp per d, lanes along e (coalesced), a fixed shuffle tree (deterministic).
constexpr int kContractColsThreads = 128;

template <class T>
__global__ void __launch_bounds__(kContractColsThreads)
    contract_cols_kernel(Rows y,
                         Rows out,
                         const float* __restrict__ states,
                         float alpha,
                         std::int64_t h,
                         std::int64_t n,
                         int d_dim,
                         int e_dim) {
  __shared__ float y_s[128];
  const std::int64_t row = blockIdx.x;
  const std::int64_t bh = row / n, t = row % n;
  const std::int64_t b = bh / h, hh = bh % h;
  const T* y_row = static_cast<const T*>(y.data) + row_offset(y, b, hh, t);
  for (int i = threadIdx.x; i < e_dim; i += blockDim.x) y_s[i] = to_float(y_row[i]);
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* out_row = static_cast<T*>(const_cast<void*>(out.data)) + row_offset(out, b, hh, t);
  for (int d = warp; d < d_dim; d += kContractColsThreads / 32) {
    const float* m = states + (row * d_dim + d) * e_dim;
    float acc = 0.0f;
    for (int e = lane; e < e_dim; e += 32) acc = fmaf(y_s[e], m[e], acc);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) out_row[d] = from_float<T>(alpha * acc);
  }
}

void run_scan(const ScanParams& params,
              lightning_dtype_t dtype,
              std::int64_t bh,
              cudaStream_t stream) {
  const dim3 grid(grid_rows(bh),
                  static_cast<unsigned>((params.d * params.e + kScanThreads - 1) / kScanThreads));
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    scan_kernel<T><<<grid, kScanThreads, 0, stream>>>(params);
  });
  LIGHTNING_CHECK_LAUNCH();
}

void run_contract_rows(const lightning_tensor_t& x,
                       const lightning_tensor_t& out,
                       const float* states,
                       float alpha,
                       const Shape& shape,
                       cudaStream_t stream) {
  const unsigned rows = grid_rows(shape.b * shape.h * shape.n);
  dispatch_dtype(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    contract_rows_kernel<T><<<rows, static_cast<unsigned>(shape.e), 0, stream>>>(
        rows_of(x), rows_of(out), states, alpha, shape.h, shape.n, static_cast<int>(shape.d),
        static_cast<int>(shape.e));
  });
  LIGHTNING_CHECK_LAUNCH();
}

void run_contract_cols(const lightning_tensor_t& y,
                       const lightning_tensor_t& out,
                       const float* states,
                       float alpha,
                       const Shape& shape,
                       cudaStream_t stream) {
  const unsigned rows = grid_rows(shape.b * shape.h * shape.n);
  dispatch_dtype(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    contract_cols_kernel<T><<<rows, kContractColsThreads, 0, stream>>>(
        rows_of(y), rows_of(out), states, alpha, shape.h, shape.n, static_cast<int>(shape.d),
        static_cast<int>(shape.e));
  });
  LIGHTNING_CHECK_LAUNCH();
}

std::size_t states_bytes(const Shape& shape) {
  std::size_t bytes = sizeof(float);
  for (std::int64_t x : {shape.b, shape.h, shape.n, shape.d, shape.e}) {
    bytes = checked_mul(bytes, static_cast<std::size_t>(x));
  }
  return bytes;
}

}  // namespace

std::size_t cumsum_forward_scratch_bytes(const lightning_fwd_params_t& params) {
  return states_bytes(validate(params));
}

std::size_t cumsum_backward_scratch_bytes(const lightning_bwd_params_t& params) {
  return states_bytes(validate(params));
}

void cumsum_forward(const lightning_fwd_params_t& params, cudaStream_t stream) {
  const Shape shape = checked_shape(params, stream);
  ::lightning::gpu::DeviceBuffer states(states_bytes(shape));
  StreamFence fence(stream);  // after the buffer: destroyed first, so it waits before the free

  ScanParams scan{};
  scan.a = rows_of(params.k);
  scan.b = rows_of(params.v);
  scan.alpha = 1.0f;
  scan.s = params.s;
  scan.h = shape.h;
  scan.n = shape.n;
  scan.d = shape.d;
  scan.e = shape.e;
  scan.reverse = false;
  scan.states = states.as<float>();
  scan.init = strides_of(params.initial_state);
  scan.fin = strides_of(params.final_state);
  run_scan(scan, params.q.dtype, shape.b * shape.h, stream);
  run_contract_rows(params.q, params.o, states.as<float>(), params.scale, shape, stream);
  fence.finish();
}

void cumsum_backward(const lightning_bwd_params_t& params, cudaStream_t stream) {
  const Shape shape = checked_shape(params, stream);
  ::lightning::gpu::DeviceBuffer states(states_bytes(shape));
  StreamFence fence(stream);
  const std::int64_t bh = shape.b * shape.h;

  ScanParams forward{};  // S_t for dQ
  forward.a = rows_of(params.k);
  forward.b = rows_of(params.v);
  forward.alpha = 1.0f;
  forward.s = params.s;
  forward.h = shape.h;
  forward.n = shape.n;
  forward.d = shape.d;
  forward.e = shape.e;
  forward.reverse = false;
  forward.states = states.as<float>();
  forward.init = strides_of(params.initial_state);
  run_scan(forward, params.q.dtype, bh, stream);
  run_contract_cols(params.dout, params.dq, states.as<float>(), params.scale, shape, stream);

  ScanParams reverse = forward;  // dS_t, overwriting S_t (stream order: after dQ read it)
  reverse.a = rows_of(params.q);
  reverse.b = rows_of(params.dout);
  reverse.alpha = params.scale;
  reverse.reverse = true;
  reverse.init = strides_of(params.dfinal_state);
  reverse.fin = strides_of(params.dinitial_state);
  run_scan(reverse, params.q.dtype, bh, stream);
  run_contract_cols(params.v, params.dk, states.as<float>(), 1.0f, shape, stream);
  run_contract_rows(params.k, params.dv, states.as<float>(), 1.0f, shape, stream);
  fence.finish();
}

}  // namespace lightning::ref::gpu
