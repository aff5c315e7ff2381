// The sequential recurrence, forward and backward: the long-sequence GPU oracle.
//
// Every pass is one "sweep" of a decayed rank-1 recurrence over the tokens, each thread group
// owning one row or one column j of a D x E state and holding that vector x (length L) in
// registers:
//     x <- lambda x + alpha a_t[j] b_t            (forward: decay first; reverse: decay after)
//     out_t[j] = beta c_t . x
//   forward      owner e (column of S), L = D:  a = v, b = k, c = q, out = o,  beta = scale
//   dQ           owner d (row of S),    L = E:  a = k, b = v, c = dO, out = dq, beta = scale
//   dK (reverse) owner d (row of dS),   L = E:  a = q (alpha = scale), b = dO, c = v, out = dk
//   dV (reverse) owner e (column of dS),L = D:  a = dO (alpha = scale), b = q, c = k, out = dv
// The reverse sweep runs dS_t = lambda dS_{t+1} + scale q_t^T dO_t from dS_final, decaying after
// each token, so dS0 = lambda dS_0 falls out at the end: no decay is ever divided.
// Grid: (B * H, J / 32); block: 32 owners x 4 threads, each thread holding L / 4 elements as a
// compensated pair (hi, lo) = 2 * 32 registers at L = 128. Tokens are staged 32 at a time in shared
// memory as float: 2 * 32 x 128 x 4 B + 32 x 32 x 4 B = 36 KiB at L = 128.
#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/gpu.h>

#include "common.cuh"

namespace lightning::ref::gpu {
namespace {

using namespace detail;  // NOLINT: the helpers of this folder

constexpr int kOwnersPerBlock = 32;
constexpr int kParts = 4;  // threads per owner: 4 keeps hi + lo of L = 128 at 64 registers
constexpr int kThreads = kOwnersPerBlock * kParts;
constexpr int kChunk = 32;  // tokens staged per step

// An fp32 state [B, H, D, E] seen from one owner: element i of owner j's vector.
struct StateView {
  float* data = nullptr;  // nullptr: absent (zero initial state / nothing written)
  std::int64_t stride_b = 0, stride_h = 0, stride_i = 0, stride_j = 0;
};

// by_rows: owner d, vector index e; otherwise owner e, vector index d.
StateView state_view(const lightning_tensor_t& t, bool by_rows) {
  StateView v;
  v.data = static_cast<float*>(t.data);
  v.stride_b = t.stride[0];
  v.stride_h = t.stride[1];
  v.stride_i = by_rows ? t.stride[3] : t.stride[2];
  v.stride_j = by_rows ? t.stride[2] : t.stride[3];
  return v;
}

struct SweepParams {
  Rows a;    // [B, H, N, J]: one scalar per owner and token
  Rows b;    // [B, H, N, L]
  Rows c;    // [B, H, N, L]
  Rows out;  // [B, H, N, J] (written)
  const float* s;
  std::int64_t n;
  std::int64_t h;
  float alpha, beta;
  bool reverse;
  StateView init;  // x before the first token processed
  StateView fin;   // x after the last one (after the final decay when reverse)
};

template <class T, int L>
__global__ void __launch_bounds__(kThreads) sweep_kernel(const __grid_constant__ SweepParams p) {
  static_assert(L % (4 * kParts) == 0, "each thread holds whole float4 groups");
  constexpr int kGroups = L / (4 * kParts);  // float4 groups per thread
  constexpr int kPer = 4 * kGroups;
  __shared__ __align__(16) float b_s[kChunk][L];  // (kChunk, L)
  __shared__ __align__(16) float c_s[kChunk][L];  // (kChunk, L)
  __shared__ float a_s[kChunk][kOwnersPerBlock];

  const std::int64_t bh = blockIdx.x;
  const std::int64_t b = bh / p.h;
  const std::int64_t h = bh % p.h;
  const int owner_local = static_cast<int>(threadIdx.x) / kParts;
  const int part = static_cast<int>(threadIdx.x) % kParts;
  const std::int64_t owner = static_cast<std::int64_t>(blockIdx.y) * kOwnersPerBlock + owner_local;
  const Decay decay = make_decay(p.s[h]);

  // Thread `part` holds float4 groups g = m * kParts + part: neighbouring threads read
  // neighbouring 16 B of a staged row, so the shared loads are conflict-free.
  float hi[kPer], lo[kPer];
#pragma unroll
  for (int m = 0; m < kGroups; ++m) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const std::int64_t i = (m * kParts + part) * 4 + r;
      hi[m * 4 + r] = p.init.data ? p.init.data[b * p.init.stride_b + h * p.init.stride_h +
                                                i * p.init.stride_i + owner * p.init.stride_j]
                                  : 0.0f;
      lo[m * 4 + r] = 0.0f;
    }
  }

  const T* a_rows = static_cast<const T*>(p.a.data) + row_offset(p.a, b, h, 0) +
                    static_cast<std::int64_t>(blockIdx.y) * kOwnersPerBlock;
  const T* b_rows = static_cast<const T*>(p.b.data) + row_offset(p.b, b, h, 0);
  const T* c_rows = static_cast<const T*>(p.c.data) + row_offset(p.c, b, h, 0);
  T* out_rows = static_cast<T*>(const_cast<void*>(p.out.data)) + row_offset(p.out, b, h, 0);

  // Reverse: the gradient arriving at the last token is not decayed (dS_{N-1} = dS_final + ...).
  Decay step_decay = p.reverse ? Decay{1.0f, 0.0f} : decay;
  for (std::int64_t done = 0; done < p.n; done += kChunk) {
    const int count = p.n - done < kChunk ? static_cast<int>(p.n - done) : kChunk;
    const std::int64_t t0 = p.reverse ? p.n - done - count : done;
    __syncthreads();  // the previous chunk has been consumed
    for (int idx = threadIdx.x; idx < count * L; idx += kThreads) {
      const int tt = idx / L, i = idx % L;
      b_s[tt][i] = to_float(b_rows[(t0 + tt) * p.b.stride_n + i]);
      c_s[tt][i] = to_float(c_rows[(t0 + tt) * p.c.stride_n + i]);
    }
    for (int idx = threadIdx.x; idx < count * kOwnersPerBlock; idx += kThreads) {
      const int tt = idx / kOwnersPerBlock, j = idx % kOwnersPerBlock;
      a_s[tt][j] = p.alpha * to_float(a_rows[(t0 + tt) * p.a.stride_n + j]);
    }
    __syncthreads();
    for (int step = 0; step < count; ++step) {
      const int tt = p.reverse ? count - 1 - step : step;
      const float av = a_s[tt][owner_local];
      const float4* b4 = reinterpret_cast<const float4*>(b_s[tt]);
      const float4* c4 = reinterpret_cast<const float4*>(c_s[tt]);
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int m = 0; m < kGroups; ++m) {
        const float4 bv = b4[m * kParts + part];
        const float4 cv = c4[m * kParts + part];
        const float bs[4] = {bv.x, bv.y, bv.z, bv.w};
        const float cs[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          compensated_update(hi[m * 4 + r], lo[m * 4 + r], step_decay, av, bs[r]);
          acc[r] = fmaf(cs[r], hi[m * 4 + r], acc[r]);
          acc[r] = fmaf(cs[r], lo[m * 4 + r], acc[r]);
        }
      }
      float dot = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      dot += __shfl_xor_sync(0xffffffffu, dot, 1);
      dot += __shfl_xor_sync(0xffffffffu, dot, 2);
      if (part == 0) {
        out_rows[(t0 + tt) * p.out.stride_n + owner] = from_float<T>(p.beta * dot);
      }
      step_decay = decay;
    }
  }

  if (p.reverse) {  // dS0 = lambda dS_0
#pragma unroll
    for (int i = 0; i < kPer; ++i) compensated_update(hi[i], lo[i], decay, 0.0f, 0.0f);
  }
  if (p.fin.data) {
#pragma unroll
    for (int m = 0; m < kGroups; ++m) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const std::int64_t i = (m * kParts + part) * 4 + r;
        p.fin.data[b * p.fin.stride_b + h * p.fin.stride_h + i * p.fin.stride_i +
                   owner * p.fin.stride_j] = hi[m * 4 + r] + lo[m * 4 + r];
      }
    }
  }
}

// owners: J (the width of a and out); length: L (the width of b and c).
void run_sweep(const SweepParams& params,
               lightning_dtype_t dtype,
               std::int64_t bh,
               std::int64_t owners,
               std::int64_t length,
               cudaStream_t stream) {
  const dim3 grid(grid_rows(bh), static_cast<unsigned>(owners / kOwnersPerBlock));
  dispatch_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (length) {
      case 64:
        sweep_kernel<T, 64><<<grid, kThreads, 0, stream>>>(params);
        break;
      case 128:
        sweep_kernel<T, 128><<<grid, kThreads, 0, stream>>>(params);
        break;
      default:
        throw InvalidArgument(
            LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM,
            "lightning::ref::gpu: head dim " + std::to_string(length) + " (64 or 128)");
    }
  });
  LIGHTNING_CHECK_LAUNCH();
}

}  // namespace

void recurrent_forward(const lightning_fwd_params_t& params, cudaStream_t stream) {
  const Shape shape = checked_shape(params, stream);
  SweepParams sweep{};
  sweep.a = rows_of(params.v);
  sweep.b = rows_of(params.k);
  sweep.c = rows_of(params.q);
  sweep.out = rows_of(params.o);
  sweep.s = params.s;
  sweep.n = shape.n;
  sweep.h = shape.h;
  sweep.alpha = 1.0f;
  sweep.beta = params.scale;
  sweep.reverse = false;
  sweep.init = state_view(params.initial_state, /*by_rows=*/false);
  sweep.fin = state_view(params.final_state, /*by_rows=*/false);
  run_sweep(sweep, params.q.dtype, shape.b * shape.h, shape.e, shape.d, stream);
}

void recurrent_backward(const lightning_bwd_params_t& params, cudaStream_t stream) {
  const Shape shape = checked_shape(params, stream);
  const std::int64_t bh = shape.b * shape.h;
  const lightning_dtype_t dtype = params.q.dtype;

  SweepParams dq{};  // S forward by rows: dQ_t = scale dO_t S_t^T
  dq.a = rows_of(params.k);
  dq.b = rows_of(params.v);
  dq.c = rows_of(params.dout);
  dq.out = rows_of(params.dq);
  dq.s = params.s;
  dq.n = shape.n;
  dq.h = shape.h;
  dq.alpha = 1.0f;
  dq.beta = params.scale;
  dq.reverse = false;
  dq.init = state_view(params.initial_state, /*by_rows=*/true);
  run_sweep(dq, dtype, bh, shape.d, shape.e, stream);

  SweepParams dk{};  // dS reverse by rows: dK_t = v_t dS_t^T, and dS0
  dk.a = rows_of(params.q);
  dk.b = rows_of(params.dout);
  dk.c = rows_of(params.v);
  dk.out = rows_of(params.dk);
  dk.s = params.s;
  dk.n = shape.n;
  dk.h = shape.h;
  dk.alpha = params.scale;
  dk.beta = 1.0f;
  dk.reverse = true;
  dk.init = state_view(params.dfinal_state, /*by_rows=*/true);
  dk.fin = state_view(params.dinitial_state, /*by_rows=*/true);
  run_sweep(dk, dtype, bh, shape.d, shape.e, stream);

  SweepParams dv{};  // dS reverse by columns: dV_t = k_t dS_t
  dv.a = rows_of(params.dout);
  dv.b = rows_of(params.q);
  dv.c = rows_of(params.k);
  dv.out = rows_of(params.dv);
  dv.s = params.s;
  dv.n = shape.n;
  dv.h = shape.h;
  dv.alpha = params.scale;
  dv.beta = 1.0f;
  dv.reverse = true;
  dv.init = state_view(params.dfinal_state, /*by_rows=*/false);
  run_sweep(dv, dtype, bh, shape.e, shape.d, stream);
}

}  // namespace lightning::ref::gpu
