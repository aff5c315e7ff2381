// Lightning Attention forward: o_t = scale * q_t S_t with S_t = lambda S_{t-1} + k_t^T v_t.
//
// Blocked over the sequence (kBlockN = 64 tokens): inside a block, masked decayed attention on the
// tensor cores (mma.sync m16n8k16, bf16/fp16 in, fp32 accumulate); between blocks, the fp32 state
// held TRANSPOSED (S^T, a 64-wide value slice x D) in registers, so that it is directly the A
// operand of O^T = S^T Q^T and the accumulator of S^T += V^T diag(w) K.
// Grid: one thread block per (b, h, segment, 64-wide value slice), 4 warps, warp w owning value
// rows 16w..16w+15 of S^T and O^T. Segments (> 1 only when (b, h, slice) chains cannot fill the
// GPU) run three kernels: local states of all segments but the last, a scan over segments, then
// the outputs (the last segment's pass writes the final state).
// Shared memory (bf16, D = 128): 2 stages x (Q 16 KiB + K 16 KiB + V 8 KiB) + P 8 KiB + O staging
// 9 KiB = 98 KiB: two blocks per SM.
// fp32 inputs take a SIMT kernel (the same blocked algorithm in fp32 FMAs, same grid and segments).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include <lightning/cuda_check.h>

#include "device_utils.cuh"
#include "plan.h"

namespace lightning::detail {

struct FwdKernelParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  std::int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3];  // b, h, n (elements)
  const float* s;
  // o = intra_scale * (intra part) + inter_scale * (inter part); the state accumulates
  // update_scale * k^T v. The forward: scale, scale, 1. The backward's reversed passes (dK, dV)
  // fold the scale into the state instead: scale, 1, scale.
  float intra_scale, inter_scale, update_scale;
  // 1: the initial state enters undecayed at the first token (S_0 = S_init + k_0^T v_0), as the
  // gradient at the final state does in the reversed passes; 0: the forward's S_init decays once.
  int init_shift;
  // 1: the final state is written times lambda (dS0 = lambda dS_0 in the backward).
  int final_extra_decay;
  const float* initial_state;  // may be null (zero state)
  std::int64_t is_stride[4];   // b, h, d, e: a transposed view is just swapped strides
  float* final_state;          // may be null
  std::int64_t fs_stride[4];
  float* workspace;  // [b][h][segment][D][E] fp32: local states, then incoming states
  std::int64_t b, h, n;
  std::int64_t segments, segment_len;
};

enum class FwdMode { kOutput, kLocalState };

// The (b, h, segment, value slice) of a thread block: slices innermost so that the slices of one
// head run side by side and share Q and K through L2. The local-state pass covers every segment
// but the last (whose state nobody needs: its output pass writes the final state itself).
struct FwdBlock {
  std::int64_t bb, hh, seg;
  int slice;
};

template <FwdMode kMode>
__device__ __forceinline__ FwdBlock decode_block(const FwdKernelParams& p, int splits) {
  std::int64_t idx = blockIdx.x;
  FwdBlock blk;
  blk.slice = static_cast<int>(idx % splits);
  idx /= splits;
  const std::int64_t grid_segments = kMode == FwdMode::kLocalState ? p.segments - 1 : p.segments;
  blk.seg = idx % grid_segments;
  idx /= grid_segments;
  blk.hh = idx % p.h;
  blk.bb = idx / p.h;
  return blk;
}

// A (kHeadDim, kValueDim) fp32 state in memory: element (d, e) at ptr[d * sd + e * se].
struct StateView {
  float* ptr;
  std::int64_t sd, se;
};

// Where a thread block's starting state comes from: its segment's incoming state in the
// workspace, the caller's initial state, or nothing (zero).
template <int kHeadDim, int kValueDim, FwdMode kMode>
__device__ __forceinline__ StateView state_source(const FwdKernelParams& p, const FwdBlock& b) {
  if constexpr (kMode == FwdMode::kOutput) {
    if (p.segments > 1) {
      return {p.workspace + ((b.bb * p.h + b.hh) * p.segments + b.seg) * kHeadDim * kValueDim,
              kValueDim, 1};
    }
    if (p.initial_state != nullptr) {
      return {const_cast<float*>(p.initial_state) + b.bb * p.is_stride[0] + b.hh * p.is_stride[1],
              p.is_stride[2], p.is_stride[3]};
    }
  }
  return {nullptr, 0, 0};
}

// Where a thread block's state goes at its end: a segment's local state, the final state (the
// last segment's output pass), or nowhere.
template <int kHeadDim, int kValueDim, FwdMode kMode>
__device__ __forceinline__ StateView state_destination(const FwdKernelParams& p,
                                                       const FwdBlock& b) {
  if constexpr (kMode == FwdMode::kLocalState) {
    return {p.workspace + ((b.bb * p.h + b.hh) * p.segments + b.seg) * kHeadDim * kValueDim,
            kValueDim, 1};
  } else {
    if (b.seg == p.segments - 1 && p.final_state != nullptr) {
      return {p.final_state + b.bb * p.fs_stride[0] + b.hh * p.fs_stride[1], p.fs_stride[2],
              p.fs_stride[3]};
    }
    return {nullptr, 0, 0};
  }
}

template <class Element, int kHeadDim, int kValueDim>
struct FwdTraits {
  static constexpr int kBlockN = 64;
  static constexpr int kSliceE = 64;  // value columns per thread block
  static constexpr int kWarps = kSliceE / 16;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kSplits = kValueDim / kSliceE;
  static constexpr int kDChunks = kHeadDim / 8;  // 16-byte chunks per Q/K row
  static constexpr int kEChunks = kSliceE / 8;
  // Rows padded by 16 bytes: an odd number of 16-byte chunks per row puts the 8 rows of an
  // ldmatrix in 8 different bank groups, and every fragment address is a per-lane base plus a
  // compile-time offset (an XOR swizzle needs run-time arithmetic for each ldmatrix).
  static constexpr int kQStride = kHeadDim + 8;  // Q and K rows
  static constexpr int kVStride = kSliceE + 8;
  static constexpr int kPStride = kBlockN + 8;
  static constexpr int kOStride = kSliceE + 8;
  static constexpr int kQTile = kBlockN * kQStride;  // (kBlockN, kHeadDim) + padding
  static constexpr int kVTile = kBlockN * kVStride;  // (kBlockN, kSliceE) + padding
  static constexpr int kStage = 2 * kQTile + kVTile;
  static constexpr int kStages = 2;
  static constexpr int kPTile = kBlockN * kPStride;  // (kBlockN, kBlockN) masked scores
  static constexpr int kOTile = kBlockN * kOStride;  // output staging
  static constexpr int kElements = kStages * kStage + kPTile + kOTile;
  // bf16, D = 128: 2 x (17 + 17 + 9) KiB + 9 + 9 KiB = 105.5 KiB: two blocks per SM.
  static constexpr std::size_t kSmemBytes =
      kElements * sizeof(Element) + (kBlockN + 1) * sizeof(float);
  // The local-state pass needs only K and V, and little math per block: it is bound by memory
  // latency, so it keeps 4 blocks in flight (2 stages ran it at a third of the bandwidth).
  static constexpr int kLocalStages = 4;
  static constexpr int kLocalStage = kQTile + kVTile;
  static constexpr std::size_t kLocalSmemBytes =
      kLocalStages * kLocalStage * sizeof(Element) + (kBlockN + 1) * sizeof(float);
  static_assert(kLocalSmemBytes <= 113 * 1024, "two thread blocks per SM");
  static_assert(kValueDim % kSliceE == 0);
  static_assert(kHeadDim % 16 == 0);
  static_assert((kElements * sizeof(Element)) % 16 == 0);
  static_assert(kSmemBytes <= 113 * 1024, "two thread blocks per SM");
};

// The cp.async work of one thread for one (kBlockN, kChunks * 8) tile: rows r0, r0 + kRowStep,
// ... of chunk c. Global addresses are computed once; each block adds its token offset.
template <int kChunks, int kThreads>
struct TileLoader {
  static constexpr int kRowStep = kThreads / kChunks;
  static constexpr int kIters = 64 / kRowStep;
  static_assert(kThreads % kChunks == 0 && 64 % kRowStep == 0);
  int r0, c;
  __device__ __forceinline__ explicit TileLoader(int tid) : r0(tid / kChunks), c(tid % kChunks) {}
  // Rows past `rows` are zero-filled (src-size 0).
  template <class Element>
  __device__ __forceinline__ void load(
      Element* dst, int dst_stride, const Element* src, std::int64_t row_stride, int rows) const {
    const Element* from = src + r0 * row_stride + c * 8;
    Element* to = dst + r0 * dst_stride + c * 8;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const bool valid = r0 + i * kRowStep < rows;
      cp_async_16(to + i * kRowStep * dst_stride, valid ? from + i * kRowStep * row_stride : src,
                  valid ? 16 : 0);
    }
  }
};

template <class Element, int kHeadDim, int kValueDim, FwdMode kMode>
__global__ void __launch_bounds__(FwdTraits<Element, kHeadDim, kValueDim>::kThreads, 2)
    lightning_fwd_kernel(const __grid_constant__ FwdKernelParams p) {
  using T = FwdTraits<Element, kHeadDim, kValueDim>;
  using ET = ElementTraits<Element>;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kDTiles = kHeadDim / 8;  // n-tiles of the state along d
  constexpr int kQS = T::kQStride, kVS = T::kVStride, kPS = T::kPStride;

  constexpr bool kOut = kMode == FwdMode::kOutput;
  // Stages of (Q, K, V) tiles, or of (K, V) in the local-state pass.
  constexpr int kStages = kOut ? T::kStages : T::kLocalStages;
  constexpr int kStage = kOut ? T::kStage : T::kLocalStage;
  constexpr int kKOffset = kOut ? T::kQTile : 0;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  Element* smem = reinterpret_cast<Element*>(smem_raw);
  Element* sp = smem + kStages * kStage;  // masked scores P (kBlockN, kBlockN), output pass only
  Element* so = sp + T::kPTile;           // output staging (kBlockN, kSliceE), output pass only
  float* decay = reinterpret_cast<float*>(kOut ? reinterpret_cast<Element*>(so + T::kOTile) : sp);

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;

  const FwdBlock where = decode_block<kMode>(p, T::kSplits);
  const std::int64_t bb = where.bb, hh = where.hh, seg = where.seg;
  const int e0 = where.slice * T::kSliceE;

  const std::int64_t n_begin = seg * p.segment_len;
  const std::int64_t n_end = min(p.n, n_begin + p.segment_len);
  const int num_blocks = static_cast<int>((n_end - n_begin + kBlockN - 1) / kBlockN);

  const float s = p.s[hh];
  if (tid <= kBlockN) decay[tid] = expf(-s * static_cast<float>(tid));

  const Element* q = static_cast<const Element*>(p.q) + bb * p.q_stride[0] + hh * p.q_stride[1] +
                     n_begin * p.q_stride[2];
  const Element* k = static_cast<const Element*>(p.k) + bb * p.k_stride[0] + hh * p.k_stride[1] +
                     n_begin * p.k_stride[2];
  const Element* v = static_cast<const Element*>(p.v) + bb * p.v_stride[0] + hh * p.v_stride[1] +
                     n_begin * p.v_stride[2] + e0;
  Element* o = static_cast<Element*>(p.o) + bb * p.o_stride[0] + hh * p.o_stride[1] +
               n_begin * p.o_stride[2] + e0;

  // The state slice S^T (kSliceE rows e, kHeadDim cols d) as mma accumulators: this warp holds
  // rows 16*warp.. +15; st[j] is the m16n8 tile of d columns 8j..8j+7.
  float st[kDTiles][4];
  const int row_e = 16 * warp + lane / 4;  // e of st[j][0..1]; st[j][2..3] are at row_e + 8
  const int col_d = 2 * (lane % 4);        // d of st[j][0] and st[j][2] within the tile
  {
    const StateView init = state_source<kHeadDim, kValueDim, kMode>(p, where);
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int e = e0 + row_e + (c >= 2 ? 8 : 0);
        const int d = 8 * j + col_d + (c & 1);
        st[j][c] = init.ptr ? init.ptr[d * init.sd + e * init.se] : 0.f;
      }
    }
  }

  // Per-lane ldmatrix offsets (elements), each used with compile-time offsets added:
  //   x4 A fragment of a row-major tile: row lane % 16, column chunk lane / 16;
  //   x4 pair of B fragments of an [n][k] tile: row (n) lane % 8 + 8 (lane / 16), chunk (lane / 8)
  //   % 2; x4 trans A fragment of a [k][m] tile: row (k) lane % 8 + 8 (lane / 16), chunk (lane / 8)
  //   % 2; x4 trans pair of B fragments of a [k][n] tile: row (k) lane % 16, chunk lane / 16.
  const int lane_a = (lane % 16) * kQS + (lane / 16) * 8;
  const int lane_b_rows = lane % 8 + 8 * (lane / 16);
  const int lane_b_chunk = ((lane / 8) % 2) * 8;
  const int off_aq = 16 * warp * kQS + lane_a;                      // Q rows of this warp
  const int off_bq = lane_b_rows * kQS + lane_b_chunk;              // Q or K as [n][k]
  const int off_vt = lane_b_rows * kVS + lane_b_chunk + 16 * warp;  // V^T rows of this warp
  const int off_bp = lane_b_rows * kPS + lane_b_chunk;              // P as [n][k]
  const int off_kt = lane_a;                                        // K as [k][n], trans

  const TileLoader<T::kDChunks, T::kThreads> qk_loader(tid);
  const TileLoader<T::kEChunks, T::kThreads> v_loader(tid);
  // Issue block `blk`'s tiles into its stage; always commit a group (possibly empty) so that the
  // wait below counts the same in every iteration.
  auto load_block = [&](int blk) {
    if (blk < num_blocks) {
      Element* stage = smem + (blk % kStages) * kStage;
      const int rows = static_cast<int>(
          min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
      const std::int64_t t0 = static_cast<std::int64_t>(blk) * kBlockN;
      if constexpr (kOut) qk_loader.load(stage, kQS, q + t0 * p.q_stride[2], p.q_stride[2], rows);
      qk_loader.load(stage + kKOffset, kQS, k + t0 * p.k_stride[2], p.k_stride[2], rows);
      v_loader.load(stage + kKOffset + T::kQTile, kVS, v + t0 * p.v_stride[2], p.v_stride[2], rows);
    }
    cp_async_commit();
  };

#pragma unroll
  for (int blk = 0; blk < kStages - 1; ++blk) load_block(blk);
  for (int blk = 0; blk < num_blocks; ++blk) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // block blk's tiles (and, at blk 0, the decay table) are visible, and every
                      // warp is done with block blk - 1, whose stage the next load reuses
    load_block(blk + kStages - 1);

    const Element* sq = smem + (blk % kStages) * kStage;
    const Element* sk = sq + kKOffset;
    const Element* sv = sk + T::kQTile;
    const int len =
        static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
    // The first block of the sequence takes one power of lambda fewer on the initial state.
    const int shift = (p.init_shift && seg == 0 && blk == 0) ? 1 : 0;

    // V^T fragments of this warp's value rows, A operands of both O^T += V^T P^T and the update:
    // vt[ks] covers tokens 16ks..16ks+15. From V (tokens, e) through ldmatrix.trans.
    uint32_t vt[kBlockN / 16][4];
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) ldsm_x4_trans(vt[ks], sv + off_vt + 16 * ks * kVS);

    if constexpr (kMode == FwdMode::kOutput) {
      // 1. P = (Q K^T) (.) M * scale for query rows 16w..16w+15; key tiles past the diagonal
      //    are all zero by causality and skipped.
      {
        float pacc[kBlockN / 8][4];
#pragma unroll
        for (int j = 0; j < kBlockN / 8; ++j)
          pacc[j][0] = pacc[j][1] = pacc[j][2] = pacc[j][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < kHeadDim / 16; ++ks) {
          uint32_t a[4];
          ldsm_x4(a, sq + off_aq + 16 * ks);
#pragma unroll
          for (int np = 0; np < kBlockN / 16; ++np) {
            if (np <= warp) {
              uint32_t b[4];
              ldsm_x4(b, sk + off_bq + 16 * np * kQS + 16 * ks);
              ET::mma(pacc[2 * np], a, b[0], b[1]);
              ET::mma(pacc[2 * np + 1], a, b[2], b[3]);
            }
          }
        }
#pragma unroll
        for (int j = 0; j < kBlockN / 8; ++j) {
          if (j / 2 <= warp) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int t = 16 * warp + lane / 4 + 8 * half;
              const int u = 8 * j + 2 * (lane % 4);
              const float x0 = u <= t ? pacc[j][2 * half] * p.intra_scale * decay[t - u] : 0.f;
              const float x1 =
                  u + 1 <= t ? pacc[j][2 * half + 1] * p.intra_scale * decay[t - u - 1] : 0.f;
              *reinterpret_cast<uint32_t*>(sp + t * kPS + u) = ET::pack(x0, x1);
            }
          }
        }
      }

      // 2. O^T = S^T Q^T (inter part, state before this block), columns scaled by
      // scale*lambda^(t+1).
      float oacc[kBlockN / 8][4];
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) oacc[j][0] = oacc[j][1] = oacc[j][2] = oacc[j][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kHeadDim / 16; ++ks) {
        const uint32_t a[4] = {ET::pack(st[2 * ks][0], st[2 * ks][1]),
                               ET::pack(st[2 * ks][2], st[2 * ks][3]),
                               ET::pack(st[2 * ks + 1][0], st[2 * ks + 1][1]),
                               ET::pack(st[2 * ks + 1][2], st[2 * ks + 1][3])};
#pragma unroll
        for (int np = 0; np < kBlockN / 16; ++np) {
          uint32_t b[4];
          ldsm_x4(b, sq + off_bq + 16 * np * kQS + 16 * ks);
          ET::mma(oacc[2 * np], a, b[0], b[1]);
          ET::mma(oacc[2 * np + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
        const int t = 8 * j + 2 * (lane % 4);
        const float w0 = p.inter_scale * decay[t + 1 - shift];
        const float w1 = p.inter_scale * decay[t + 2 - shift];
        oacc[j][0] *= w0;
        oacc[j][1] *= w1;
        oacc[j][2] *= w0;
        oacc[j][3] *= w1;
      }
      __syncthreads();  // P is complete

      // 3. O^T += V^T P^T (intra part); P^T is zero where keys follow queries.
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) {
#pragma unroll
        for (int np = 0; np < kBlockN / 16; ++np) {
          if (np >= ks) {
            uint32_t b[4];
            ldsm_x4(b, sp + off_bp + 16 * np * kPS + 16 * ks);
            ET::mma(oacc[2 * np], vt[ks], b[0], b[1]);
            ET::mma(oacc[2 * np + 1], vt[ks], b[2], b[3]);
          }
        }
      }

      // 4. Stage O^T as O (tokens, e) for coalesced stores.
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int t = 8 * j + 2 * (lane % 4) + (c & 1);
          const int e = row_e + (c >= 2 ? 8 : 0);
          so[t * T::kOStride + e] = ET::from_float(oacc[j][c]);
        }
      }
    }

    // 5. S^T <- lambda^len S^T + V^T diag(w) K, w[u] = lambda^(len-1-u) (0 for rows past len).
    {
      const float block_decay = decay[len - shift];
#pragma unroll
      for (int j = 0; j < kDTiles; ++j) {
#pragma unroll
        for (int c = 0; c < 4; ++c) st[j][c] *= block_decay;
      }
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) {
        // A fragment element layout: a[0]: tokens u, u+1; a[1]: same tokens, row + 8;
        // a[2], a[3]: tokens u + 8, u + 9.
        const int u = 16 * ks + 2 * (lane % 4);
        auto w = [&](int uu) { return uu < len ? p.update_scale * decay[len - 1 - uu] : 0.f; };
        const float w0 = w(u), w1 = w(u + 1), w8 = w(u + 8), w9 = w(u + 9);
        uint32_t a[4];
        float2 f = ET::unpack(vt[ks][0]);
        a[0] = ET::pack(f.x * w0, f.y * w1);
        f = ET::unpack(vt[ks][1]);
        a[1] = ET::pack(f.x * w0, f.y * w1);
        f = ET::unpack(vt[ks][2]);
        a[2] = ET::pack(f.x * w8, f.y * w9);
        f = ET::unpack(vt[ks][3]);
        a[3] = ET::pack(f.x * w8, f.y * w9);
#pragma unroll
        for (int np = 0; np < kHeadDim / 16; ++np) {
          uint32_t b[4];
          ldsm_x4_trans(b, sk + off_kt + 16 * ks * kQS + 16 * np);
          ET::mma(st[2 * np], a, b[0], b[1]);
          ET::mma(st[2 * np + 1], a, b[2], b[3]);
        }
      }
    }
    if constexpr (kOut) {
      __syncthreads();  // the staging tile is complete
      const std::int64_t t0 = static_cast<std::int64_t>(blk) * kBlockN;
      constexpr int kChunks = kBlockN * T::kEChunks;
#pragma unroll
      for (int i = tid; i < kChunks; i += T::kThreads) {
        const int t = i / T::kEChunks;
        const int c = i % T::kEChunks;
        if (t < len) {
          *reinterpret_cast<uint4*>(o + (t0 + t) * p.o_stride[2] + c * 8) =
              *reinterpret_cast<const uint4*>(so + t * T::kOStride + c * 8);
        }
      }
    }
  }

  // The state after the last block: a segment's local state, or the final state.
  const StateView out = state_destination<kHeadDim, kValueDim, kMode>(p, where);
  if (out.ptr != nullptr) {
    const float extra = p.final_extra_decay && kMode == FwdMode::kOutput ? decay[1] : 1.f;
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int e = e0 + row_e + (c >= 2 ? 8 : 0);
        const int d = 8 * j + col_d + (c & 1);
        out.ptr[d * out.sd + e * out.se] = extra * st[j][c];
      }
    }
  }
}

// ---- fp32 inputs: exact fp32 arithmetic, SIMT ------------------------------------------------
// The blocked algorithm in plain fp32 FMAs, every decay read from a table of exp(-s k) (a
// recurrence that multiplies by a rounded lambda every token drifts: lambda_fp32^64 is not
// exp(-64 s), and the error is one-signed; it came out 5-10x less accurate than the blocked fp32
// baseline). Per block of 64 tokens: P = (Q K^T) (.) M in shared memory; thread (g, e) adds the
// inter part over its state rows d = g, g + 4, ... and the intra part over keys u = g, g + 4, ...
// into its share of o[:, e]; the 4 shares meet in shared memory; then the state update.
template <int kHeadDim, int kValueDim>
struct Fp32Traits {
  static constexpr int kBlockN = 64;
  static constexpr int kSliceE = 64;
  static constexpr int kGroups = 4;
  static constexpr int kThreads = kSliceE * kGroups;
  static constexpr int kSplits = kValueDim / kSliceE;
  static constexpr int kRows = kHeadDim / kGroups;
  static constexpr int kQKStride = kHeadDim + 1;  // odd: the P dots read 8 rows conflict-free
  // q, k (kBlockN, kHeadDim + 1), v (kBlockN, kSliceE), P (kBlockN, kBlockN), partial outputs
  // (kGroups, kBlockN, kSliceE), decay table: 161 KiB at D = 128.
  static constexpr std::size_t kSmemBytes =
      (2 * kBlockN * kQKStride + kBlockN * kSliceE + kBlockN * kBlockN +
       kGroups * kBlockN * kSliceE + kBlockN + 4) *
      sizeof(float);
};

template <int kHeadDim, int kValueDim, FwdMode kMode>
__global__ void __launch_bounds__(Fp32Traits<kHeadDim, kValueDim>::kThreads)
    lightning_fwd_fp32_kernel(const __grid_constant__ FwdKernelParams p) {
  using T = Fp32Traits<kHeadDim, kValueDim>;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kQK = T::kQKStride;
  extern __shared__ __align__(16) float smem_f[];
  float* sq = smem_f;                     // (kBlockN, kQK)
  float* sk = sq + kBlockN * kQK;         // (kBlockN, kQK)
  float* sv = sk + kBlockN * kQK;         // (kBlockN, kSliceE)
  float* sp = sv + kBlockN * T::kSliceE;  // (kBlockN, kBlockN) masked scores, unscaled
  float* part = sp + kBlockN * kBlockN;   // (kGroups, kBlockN, kSliceE)
  float* decay = part + T::kGroups * kBlockN * T::kSliceE;  // lambda^k, k = 0..kBlockN

  const int tid = threadIdx.x;
  const int e = tid % T::kSliceE;
  const int g = tid / T::kSliceE;

  const FwdBlock where = decode_block<kMode>(p, T::kSplits);
  const std::int64_t bb = where.bb, hh = where.hh, seg = where.seg;
  const int e0 = where.slice * T::kSliceE;
  const std::int64_t n_begin = seg * p.segment_len;
  const std::int64_t n_end = min(p.n, n_begin + p.segment_len);
  const float s = p.s[hh];
  if (tid <= kBlockN) decay[tid] = expf(-s * static_cast<float>(tid));

  const float* q = static_cast<const float*>(p.q) + bb * p.q_stride[0] + hh * p.q_stride[1];
  const float* k = static_cast<const float*>(p.k) + bb * p.k_stride[0] + hh * p.k_stride[1];
  const float* v = static_cast<const float*>(p.v) + bb * p.v_stride[0] + hh * p.v_stride[1] + e0;
  float* o = static_cast<float*>(p.o) + bb * p.o_stride[0] + hh * p.o_stride[1] + e0;

  float st[T::kRows];  // S[g + 4 i][e0 + e]
  {
    const StateView init = state_source<kHeadDim, kValueDim, kMode>(p, where);
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      st[i] = init.ptr ? init.ptr[(g + T::kGroups * i) * init.sd + (e0 + e) * init.se] : 0.f;
    }
  }

  for (std::int64_t t0 = n_begin; t0 < n_end; t0 += kBlockN) {
    const int len = static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - t0));
    const int shift = (p.init_shift && seg == 0 && t0 == n_begin) ? 1 : 0;
    for (int i = tid; i < len * kHeadDim; i += T::kThreads) {
      const int r = i / kHeadDim, d = i % kHeadDim;
      if constexpr (kMode == FwdMode::kOutput) sq[r * kQK + d] = q[(t0 + r) * p.q_stride[2] + d];
      sk[r * kQK + d] = k[(t0 + r) * p.k_stride[2] + d];
    }
    for (int i = tid; i < len * T::kSliceE; i += T::kThreads) {
      const int r = i / T::kSliceE, c = i % T::kSliceE;
      sv[i] = v[(t0 + r) * p.v_stride[2] + c];
    }
    __syncthreads();

    if constexpr (kMode == FwdMode::kOutput) {
      // P[r][u] = (q_r . k_u) lambda^(r-u) for u <= r: thread -> row tid / 4, keys tid % 4 + 4j.
      {
        const int r = tid / 4;
        for (int u = tid % 4; u < kBlockN; u += 4) {
          float dot = 0.f;
          if (u <= r && r < len) {
#pragma unroll 8
            for (int d = 0; d < kHeadDim; ++d) dot = fmaf(sq[r * kQK + d], sk[u * kQK + d], dot);
            dot *= decay[r - u];
          }
          sp[r * kBlockN + u] = dot;
        }
      }
      __syncthreads();
      for (int r = 0; r < len; ++r) {
        float inter = 0.f, intra = 0.f;
#pragma unroll
        for (int i = 0; i < T::kRows; ++i)
          inter = fmaf(sq[r * kQK + g + T::kGroups * i], st[i], inter);
        for (int u = g; u <= r; u += T::kGroups) {
          intra = fmaf(sp[r * kBlockN + u], sv[u * T::kSliceE + e], intra);
        }
        part[(g * kBlockN + r) * T::kSliceE + e] =
            fmaf(p.inter_scale * decay[r + 1 - shift], inter, p.intra_scale * intra);
      }
    }

    // S <- lambda^len S + sum_u lambda^(len-1-u) k_u^T v_u, the sum from zero.
    {
      float upd[T::kRows];
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) upd[i] = 0.f;
      for (int u = 0; u < len; ++u) {
        const float w = p.update_scale * decay[len - 1 - u] * sv[u * T::kSliceE + e];
#pragma unroll
        for (int i = 0; i < T::kRows; ++i)
          upd[i] = fmaf(sk[u * kQK + g + T::kGroups * i], w, upd[i]);
      }
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) st[i] = fmaf(decay[len - shift], st[i], upd[i]);
    }
    __syncthreads();
    if constexpr (kMode == FwdMode::kOutput) {
      for (int i = tid; i < len * T::kSliceE; i += T::kThreads) {
        const int r = i / T::kSliceE, c = i % T::kSliceE;
        float sum = 0.f;
#pragma unroll
        for (int gg = 0; gg < T::kGroups; ++gg) sum += part[(gg * kBlockN + r) * T::kSliceE + c];
        o[(t0 + r) * p.o_stride[2] + c] = sum;
      }
      __syncthreads();
    }
  }

  const StateView out = state_destination<kHeadDim, kValueDim, kMode>(p, where);
  if (out.ptr != nullptr) {
    const float extra = p.final_extra_decay && kMode == FwdMode::kOutput ? decay[1] : 1.f;
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      out.ptr[(g + T::kGroups * i) * out.sd + (e0 + e) * out.se] = extra * st[i];
    }
  }
}

// ---- the scan over segments ---------------------------------------------------------------
// One thread per (b, h, d, e): walks segments 0..S-2 in order, replacing each local state with
// the incoming state of its segment, and stores the last segment's incoming state in slot S-1.
__global__ void lightning_segment_scan_kernel(const __grid_constant__ FwdKernelParams p,
                                              int d_dim,
                                              int e_dim);

// ---- launchers ----------------------------------------------------------------------------

void run_segment_scan(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream);

template <class Element, int kHeadDim, int kValueDim>
void run_forward(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  using T = FwdTraits<Element, kHeadDim, kValueDim>;
  auto launch = [&](auto kernel, std::int64_t segments, std::size_t smem) {
    const std::int64_t blocks = kp.b * kp.h * segments * T::kSplits;
    LIGHTNING_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
    kernel<<<static_cast<unsigned>(blocks), T::kThreads, smem, stream>>>(kp);
    LIGHTNING_CHECK_LAUNCH();
  };
  if (kp.segments > 1) {
    launch(lightning_fwd_kernel<Element, kHeadDim, kValueDim, FwdMode::kLocalState>,
           kp.segments - 1, T::kLocalSmemBytes);
    run_segment_scan(kp, shape, stream);
  }
  launch(lightning_fwd_kernel<Element, kHeadDim, kValueDim, FwdMode::kOutput>, kp.segments,
         T::kSmemBytes);
}

template <int kHeadDim, int kValueDim>
void run_forward_fp32(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  using T = Fp32Traits<kHeadDim, kValueDim>;
  auto launch = [&](auto kernel, std::int64_t segments) {
    const std::int64_t blocks = kp.b * kp.h * segments * T::kSplits;
    LIGHTNING_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(T::kSmemBytes)));
    kernel<<<static_cast<unsigned>(blocks), T::kThreads, T::kSmemBytes, stream>>>(kp);
    LIGHTNING_CHECK_LAUNCH();
  };
  if (kp.segments > 1) {
    launch(lightning_fwd_fp32_kernel<kHeadDim, kValueDim, FwdMode::kLocalState>, kp.segments - 1);
    run_segment_scan(kp, shape, stream);
  }
  launch(lightning_fwd_fp32_kernel<kHeadDim, kValueDim, FwdMode::kOutput>, kp.segments);
}

// Defined once each in kernels/instantiations/ (one translation unit per instantiation).
#define LIGHTNING_FWD_EXTERN(Element, D, E)                                             \
  extern template void run_forward<Element, D, E>(const FwdKernelParams&, const Shape&, \
                                                  cudaStream_t);
#define LIGHTNING_FWD_FP32_EXTERN(D, E) \
  extern template void run_forward_fp32<D, E>(const FwdKernelParams&, const Shape&, cudaStream_t);
LIGHTNING_FWD_EXTERN(__nv_bfloat16, 64, 64)
LIGHTNING_FWD_EXTERN(__nv_bfloat16, 64, 128)
LIGHTNING_FWD_EXTERN(__nv_bfloat16, 128, 64)
LIGHTNING_FWD_EXTERN(__nv_bfloat16, 128, 128)
LIGHTNING_FWD_EXTERN(__half, 64, 64)
LIGHTNING_FWD_EXTERN(__half, 64, 128)
LIGHTNING_FWD_EXTERN(__half, 128, 64)
LIGHTNING_FWD_EXTERN(__half, 128, 128)
LIGHTNING_FWD_FP32_EXTERN(64, 64)
LIGHTNING_FWD_FP32_EXTERN(64, 128)
LIGHTNING_FWD_FP32_EXTERN(128, 64)
LIGHTNING_FWD_FP32_EXTERN(128, 128)
#undef LIGHTNING_FWD_EXTERN
#undef LIGHTNING_FWD_FP32_EXTERN

}  // namespace lightning::detail
