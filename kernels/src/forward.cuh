// Lightning Attention forward: o_t = scale * q_t S_t with S_t = lambda S_{t-1} + k_t^T v_t.
//
// Blocked over the sequence (kBlockN = 64 tokens): inside a block, masked decayed attention on the
// tensor cores (wgmma, bf16/fp16 in, fp32 accumulate); between blocks, the fp32 state held
// TRANSPOSED (S^T, a 64-wide value slice x D) in registers as a wgmma accumulator, so that it is
// directly the register A operand of O^T = S^T Q^T and the accumulator of S^T += V^T diag(w) K.
// Grid: one thread block per (b, h, segment) with one warpgroup per 64-wide value slice (E / 64 of
// them), warp w of a warpgroup owning value rows 16w..16w+15 of its S^T and O^T; the warpgroups
// share the Q, K and V tiles. Segments (> 1 only when the (b, h) chains cannot fill the GPU) run
// three kernels: local states of all segments but the last, a scan over segments, then the
// outputs (the last segment's pass writes the final state).
// Shared memory (bf16, D = 128): E = 64: 2 stages x (Q 16 KiB + K 16 KiB + V 8 KiB) + P 8 KiB +
// O staging 9 KiB + decay tables 2 KiB = 99 KiB, two blocks per SM; E = 128: 3 stages x 48 KiB +
// P 8 KiB + 2 x 9 KiB + 2 KiB = 172 KiB, one block (8 warps) per SM.
// The output passes load their tiles and store their outputs with TMA where the views allow (one
// thread issues a tile's copy, an mbarrier per stage): the forward-direction ones, and the
// backward's fused dV / dK pass, which reads its reversed blocks flipped (kFlip). The local-state
// pass and the separate reversed passes use cp.async and 16-byte stores by every thread (kTma =
// false). With TMA the output staging is two swizzled 8 KiB tiles per warpgroup (E = 128:
// 187 KiB in all).
// fp32 inputs take a SIMT kernel (the same blocked algorithm in fp32 FMAs, a block per value
// slice).
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include <lightning/cuda_check.h>

#include "device_utils.cuh"
#include "plan.h"
#include "tma.cuh"
#include "wgmma.cuh"

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
  // [b][h][slot][D][E] fp32, (segments - 1) * local_pieces + 1 slots: the local states of the
  // pieces, then (scanned in place) the incoming state of segment g in slot g * local_pieces.
  float* workspace;
  std::int64_t b, h, n;
  std::int64_t segments, segment_len;
  // The local-state pass cuts each segment into this many pieces (of segment_len / local_pieces
  // tokens), so that it has enough thread blocks when the segments are few.
  std::int64_t local_pieces;
  // The fused backward pass (FwdMode::kDual) only: a second output o2 = x S'^T + intra, with
  // x of the value width (E) and o2 of the key width (D); see the kernel.
  const void* x;
  void* o2;
  std::int64_t x_stride[3], o2_stride[3];
  // TMA (the forward-direction passes, when the strides allow it): tensor maps of q, k and v as
  // (64 elements, n, head dim / 64, h, b) with boxes of one 64-token tile, and of o as
  // (value dim, n, h, b) with boxes of 64 tokens x 64 values, 128-byte swizzle (the tiles'
  // layout); see encode_tma_maps in launch.cu. The kernels' kTma instantiations read them.
  // The fused backward pass (kDual) maps the forward-order tensors (it reads its blocks flipped)
  // and adds x (like v) and o2 (like o, of the key width).
  CUtensorMap tm_q, tm_k, tm_v, tm_o, tm_x, tm_o2;
  int use_tma;
  // 1: the local-state pass and the scan alone (no outputs): the state at the end of the last
  // piece is left in the workspace's last slot (context parallelism's contributions, see
  // run_state_pass in launch.cu).
  int state_only;
};

// Workspace state slots per (b, h).
__host__ __device__ inline std::int64_t workspace_slots(const FwdKernelParams& p) {
  return (p.segments - 1) * p.local_pieces + 1;
}

// kDual: the backward's fused dV / dK pass (kernels/README.md, "Backward"): the dV pass's outputs
// (q' = K, k' = Q, v' = dO) and, from the same state and tiles, dK = V S'^T + intra (x = V).
enum class FwdMode { kOutput, kLocalState, kDual };

// The (b, h, segment, value slice) of a thread block; in the local-state pass, seg counts pieces.
// Only the fp32 kernel has a block per value slice (innermost, so that the slices of one head run
// side by side and share Q and K through L2); the tensor-core kernel's slice is always 0. The
// local-state pass covers every segment but the last (whose state nobody needs: its output pass
// writes the final state itself).
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
  const std::int64_t grid_segments =
      kMode == FwdMode::kLocalState ? (p.segments - 1) * p.local_pieces : p.segments;
  blk.seg = idx % grid_segments;
  idx /= grid_segments;
  blk.hh = idx % p.h;
  blk.bb = idx / p.h;
  return blk;
}

// The tokens [begin, end) of a thread block: its segment, or its piece in the local-state pass.
struct TokenRange {
  std::int64_t begin, end;
};
template <FwdMode kMode>
__device__ __forceinline__ TokenRange token_range(const FwdKernelParams& p, const FwdBlock& b) {
  const std::int64_t len =
      kMode == FwdMode::kLocalState ? p.segment_len / p.local_pieces : p.segment_len;
  return {b.seg * len, min(p.n, (b.seg + 1) * len)};
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
  if constexpr (kMode != FwdMode::kLocalState) {
    if (p.segments > 1) {
      const std::int64_t slot = b.seg * p.local_pieces;
      return {
          p.workspace + ((b.bb * p.h + b.hh) * workspace_slots(p) + slot) * kHeadDim * kValueDim,
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
    return {p.workspace + ((b.bb * p.h + b.hh) * workspace_slots(p) + b.seg) * kHeadDim * kValueDim,
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
  static constexpr int kSliceE = 64;  // value columns per warpgroup: one wgmma's M
  // One warpgroup per 64-wide value slice, all slices of a head in one thread block: Q and K are
  // loaded once for the whole head (two thread blocks per head doubled their L2 traffic, which
  // ncu showed at 87% of its peak with DRAM at 67%).
  static constexpr int kWarpgroups = kValueDim / kSliceE;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kSplits = 1;  // thread blocks per (b, h, segment)
  // Tiles as 128-byte swizzle atoms (wgmma.cuh): 64 rows of 128 bytes per 64 columns.
  static constexpr int kHalfBytes = kBlockN * 128;            // (64 tokens, 64 elements)
  static constexpr int kQBytes = kHeadDim / 64 * kHalfBytes;  // Q or K: (64, kHeadDim)
  static constexpr int kVBytes = kWarpgroups * kHalfBytes;    // V: (64, kValueDim), per slice
  static constexpr int kStageBytes = 2 * kQBytes + kVBytes;
  // One warpgroup: two thread blocks per SM, two stages each. Two: one thread block per SM,
  // three stages.
  static constexpr int kBlocksPerSm = kWarpgroups == 1 ? 2 : 1;
  static constexpr int kStages = kWarpgroups == 1 ? 2 : 3;
  // P (64 queries x 64 keys) is shared: each warpgroup computes and masks 64 / kWarpgroups keys.
  static constexpr int kPCols = kBlockN / kWarpgroups;
  static constexpr int kPBytes = kHalfBytes;    // masked scores (queries, keys)
  static constexpr int kOStride = kSliceE + 8;  // output staging row, padded: conflict-free
  static constexpr int kOBytes = kBlockN * kOStride * 2;  // per warpgroup
  // With TMA the output is staged as a 128-byte-swizzled (64 tokens x 64 values) tile, two per
  // warpgroup: a block's store is read out by the copy engine while the next block is computed.
  static constexpr int kOBytesTma = 2 * kHalfBytes;  // per warpgroup
  static constexpr int kBarBytes = 64;               // one mbarrier per stage (TMA)
  // Decay tables (floats): intra_scale lambda^k and update_scale lambda^k at k + 64 for
  // k = -64..64 (zero below 0: rows past the block's end get no weight in the update; the causal
  // mask of P is a select, so that a NaN key cannot leak), inter_scale lambda^k and lambda^k for
  // k = 0..64.
  static constexpr int kTable = 132;
  static constexpr int kTableBytes = 4 * kTable * 4;
  static constexpr int kAlign = 1024;  // swizzle atoms start at 1024-byte boundaries
  static constexpr std::size_t kSmemBytes =
      kStages * kStageBytes + kPBytes + kWarpgroups * kOBytes + kTableBytes + kAlign;
  static constexpr std::size_t kTmaSmemBytes =
      kStages * kStageBytes + kPBytes + kWarpgroups * kOBytesTma + kTableBytes + kBarBytes + kAlign;
  // The local-state pass needs only K and V and the update: it is bound by how fast one SM takes
  // them in (kernels/README.md, lightning-probe-chains), so it keeps 4 blocks in flight.
  static constexpr int kLocalStages = 4;
  static constexpr int kLocalStageBytes = kQBytes + kVBytes;
  // (kBarBytes: the stage barriers of the TMA instantiation, which lightning-probe-chains times;
  // the library launches the cp.async one.)
  static constexpr std::size_t kLocalSmemBytes =
      kLocalStages * kLocalStageBytes + kTableBytes + kBarBytes + kAlign;
  // The fused dV / dK pass: a fourth tile (x = V, value width) per stage, two stages; a second P
  // tile (x v'^T, masked); the state before each block as bf16, (kHeadDim rows d) x (kValueDim
  // columns e) in 64-column swizzle halves, the K-major B operand of dK's inter product.
  static constexpr int kDualStages = 2;
  static constexpr int kDualStageBytes = 2 * kQBytes + 2 * kVBytes;
  static constexpr int kStateHalfBytes = kHeadDim * 128;
  static constexpr int kStateBytes = kWarpgroups * kStateHalfBytes;
  static constexpr std::size_t kDualSmemBytes = kDualStages * kDualStageBytes + 2 * kPBytes +
                                                kStateBytes + kWarpgroups * kOBytes + kTableBytes +
                                                kAlign;
  static_assert(kHeadDim % 64 == 0 && kValueDim % kSliceE == 0);
  static_assert(kSmemBytes <= 227 * 1024 / kBlocksPerSm &&
                    kTmaSmemBytes <= 227 * 1024 / kBlocksPerSm &&
                    kLocalSmemBytes <= 227 * 1024 / kBlocksPerSm,
                "thread blocks per SM");
  static constexpr std::size_t kDualTmaSmemBytes = kDualStages * kDualStageBytes + 2 * kPBytes +
                                                   kStateBytes + kWarpgroups * kOBytesTma +
                                                   kTableBytes + kBarBytes + kAlign;
  static_assert(kDualSmemBytes <= 227 * 1024 && kDualTmaSmemBytes <= 227 * 1024,
                "the fused backward pass's shared memory");
};

// ---- pieces of a block shared by the tensor-core output passes (lightning_fwd_kernel and the
// warp-specialised lightning_fwd_ws_kernel, forward_ws.cuh) -------------------------------------

// The decay tables (FwdTraits::kTable floats each, from `tables`): intra_scale lambda^k and
// update_scale lambda^k at k + 64 for k = -64..64 (zero below 0), inter_scale lambda^k and
// lambda^k for k = 0..64; thread `tid` of kThreads fills every kThreads-th entry.
template <int kThreads>
__device__ __forceinline__ void fill_decay_tables(const FwdKernelParams& p,
                                                  float s,
                                                  float* tables,
                                                  int tid) {
  constexpr int kBlockN = 64, kTable = 132;
  for (int i = tid; i <= 2 * kBlockN; i += kThreads) {
    const int k = i - kBlockN;
    const float lk = k >= 0 ? expf(-s * static_cast<float>(k)) : 0.f;
    tables[i] = p.intra_scale * lk;
    tables[kTable + i] = p.update_scale * lk;
    if (k >= 0) {
      tables[2 * kTable + k] = p.inter_scale * lk;
      tables[3 * kTable + k] = lk;
    }
  }
}

// A warp's share of a 64-row S^T slice as a wgmma accumulator: st[4 j + c] is the state at
// d = 8 j + 2 q + c % 2 and e = e_row + 8 (c / 2) (e_row: the slice's first value plus the
// thread's fragment row). Loaded from `v` (zero where it has no pointer), or stored times `scale`.
template <int kHeadDim, class F>
__device__ __forceinline__ void for_each_state_element(int e_row, int q, F&& f) {
#pragma unroll
  for (int j = 0; j < kHeadDim / 8; ++j) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int e = e_row + (c >= 2 ? 8 : 0);
      const int d = 8 * j + 2 * q + (c & 1);
      f(4 * j + c, d, e);
    }
  }
}
template <int kHeadDim>
__device__ __forceinline__ void load_state_fragment(float (&st)[kHeadDim / 2],
                                                    const StateView& v,
                                                    int e_row,
                                                    int q) {
  for_each_state_element<kHeadDim>(
      e_row, q, [&](int i, int d, int e) { st[i] = v.ptr ? v.ptr[d * v.sd + e * v.se] : 0.f; });
}
template <int kHeadDim>
__device__ __forceinline__ void store_state_fragment(
    const StateView& v, const float (&st)[kHeadDim / 2], float scale, int e_row, int q) {
  for_each_state_element<kHeadDim>(
      e_row, q, [&](int i, int d, int e) { v.ptr[d * v.sd + e * v.se] = scale * st[i]; });
}

// The state fragment (kKSteps x 8 floats) as the 16-bit register A operands of O^T = S^T Q^T.
template <class Element, int kKSteps>
__device__ __forceinline__ void pack_state_operands(uint32_t (&sa)[kKSteps][4],
                                                    const float (&st)[8 * kKSteps]) {
  using ET = ElementTraits<Element>;
#pragma unroll
  for (int ks = 0; ks < kKSteps; ++ks) {
    sa[ks][0] = ET::pack(st[8 * ks + 0], st[8 * ks + 1]);
    sa[ks][1] = ET::pack(st[8 * ks + 2], st[8 * ks + 3]);
    sa[ks][2] = ET::pack(st[8 * ks + 4], st[8 * ks + 5]);
    sa[ks][3] = ET::pack(st[8 * ks + 6], st[8 * ks + 7]);
  }
}

// O^T = S^T Q^T issued as one wgmma group: the state's A operands (pack_state_operands) against
// the Q tile at q_addr, 64 tokens x 16 kKSteps features in 64-feature halves of kHalfBytes (a
// (64, 64) 16-bit tile, 128-byte swizzle).
template <class Element, int kKSteps, int kHalfBytes>
__device__ __forceinline__ void issue_inter_product(float (&oacc)[32],
                                                    const uint32_t (&sa)[kKSteps][4],
                                                    uint32_t q_addr) {
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kKSteps; ++ks) {
    const uint32_t off = (ks / 4) * kHalfBytes + (ks % 4) * 32;
    wgmma_rs<Element, 64, 0>(oacc, sa[ks], wgmma_desc(q_addr + off, 16, 1024), ks > 0);
  }
  wgmma_commit();
}

// One V^T A fragment (k-step ks) weighted per token for the update: the fragment's tokens u, u + 1
// (registers 0, 1) and u + 8, u + 9 (2, 3) take w[-kSign 16 ks], w[-kSign (16 ks + 1)], ...
template <class Element, int kSign>
__device__ __forceinline__ void weigh_fragment(uint32_t (&vw)[4],
                                               const uint32_t (&vt)[4],
                                               const float* w,
                                               int ks) {
  using ET = ElementTraits<Element>;
  const float w0 = w[-kSign * 16 * ks], w1 = w[-kSign * (16 * ks + 1)],
              w8 = w[-kSign * (16 * ks + 8)], w9 = w[-kSign * (16 * ks + 9)];
  float2 f = ET::unpack(vt[0]);
  vw[0] = ET::pack(f.x * w0, f.y * w1);
  f = ET::unpack(vt[1]);
  vw[1] = ET::pack(f.x * w0, f.y * w1);
  f = ET::unpack(vt[2]);
  vw[2] = ET::pack(f.x * w8, f.y * w9);
  f = ET::unpack(vt[3]);
  vw[3] = ET::pack(f.x * w8, f.y * w9);
}

// Mask and decay a warpgroup's kCols keys of P (the accumulator pacc: query t = 16 warp + g +
// 8 half, key u = 8 (j0 + j) + 2 q + c) and store them to the shared tile at `dst` (rows queries,
// 128-byte swizzle; off_p_row and p_xor: this lane's stmatrix row and chunk xor). a = t - u at
// j = half = c = 0, i.e. 16 warp + g - 2 q - 8 j0; kSign = -1 for blocks read flipped.
template <class Element, int kCols, int kSign>
__device__ __forceinline__ void mask_store_scores(unsigned char* dst,
                                                  const float (&pacc)[kCols / 2],
                                                  const float* tab_intra,
                                                  int a,
                                                  int j0,
                                                  int off_p_row,
                                                  int p_xor) {
  using ET = ElementTraits<Element>;
  const float* m = tab_intra + 64 + kSign * a;
#pragma unroll
  for (int j = 0; j < kCols / 8; j += 2) {
    uint32_t r[4];
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int i = 4 * (j + jj) + 2 * half;
        const int dt = 8 * half - 8 * (j + jj);
        // A select, not a product with a zero: a NaN key must not reach earlier queries.
        const float x0 = kSign * (a + dt) >= 0 ? pacc[i] * m[kSign * dt] : 0.f;
        const float x1 = kSign * (a + dt - 1) >= 0 ? pacc[i + 1] * m[kSign * (dt - 1)] : 0.f;
        r[2 * jj + half] = ET::pack(x0, x1);
      }
    }
    stsm_x4(dst + off_p_row + (((j0 + j) ^ p_xor) << 4), r[0], r[1], r[2], r[3]);
  }
}

// The inter part's columns (queries) of O^T scaled: column t = 8 j + 2 q (+1) by w[kSign t'],
// w already offset to this lane's first column.
template <int kSign>
__device__ __forceinline__ void scale_inter_columns(float (&oacc)[32], const float* w) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    oacc[4 * j + 0] *= w[kSign * 8 * j];
    oacc[4 * j + 1] *= w[kSign * (8 * j + 1)];
    oacc[4 * j + 2] *= w[kSign * 8 * j];
    oacc[4 * j + 3] *= w[kSign * (8 * j + 1)];
  }
}

// O^T (64 values x 64 tokens, this warp's 16 value rows) stored transposed into a staging tile of
// rows of kRowBytes (tokens) by stmatrix.trans; `at` is the tile plus this lane's offset.
template <class Element, int kRowBytes>
__device__ __forceinline__ void stage_output_transposed(unsigned char* at,
                                                        const float (&oacc)[32]) {
  using ET = ElementTraits<Element>;
#pragma unroll
  for (int j = 0; j < 8; j += 2) {
    stsm_x4_trans(at + 8 * j * kRowBytes, ET::pack(oacc[4 * j], oacc[4 * j + 1]),
                  ET::pack(oacc[4 * j + 2], oacc[4 * j + 3]),
                  ET::pack(oacc[4 * j + 4], oacc[4 * j + 5]),
                  ET::pack(oacc[4 * j + 6], oacc[4 * j + 7]));
  }
}

// The inverse read: a tile staged (or loaded by TMA) as stage_output_transposed writes it, added
// to O^T in the accumulator's layout (ldmatrix.trans at the same addresses).
template <class Element, int kRowBytes>
__device__ __forceinline__ void add_staged_output_transposed(float (&oacc)[32],
                                                             const unsigned char* at) {
  using ET = ElementTraits<Element>;
#pragma unroll
  for (int j = 0; j < 8; j += 2) {
    uint32_t r[4];
    ldsm_x4_trans(r, at + 8 * j * kRowBytes);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = ET::unpack(r[i]);
      oacc[4 * j + 2 * i] += f.x;
      oacc[4 * j + 2 * i + 1] += f.y;
    }
  }
}

// The cp.async work of one thread for one (64 rows, kChunks 16-byte chunks) tile stored as
// swizzle atoms: rows r0, r0 + kRowStep, ... of chunk c. Every row this thread copies has the same
// row % 8, so its destination is one offset plus a multiple of the row step.
template <int kChunks, int kThreads>
struct SwizzledTileLoader {
  static constexpr int kRowStep = kThreads / kChunks;
  static constexpr int kIters = 64 / kRowStep;
  static_assert(kThreads % kChunks == 0 && 64 % kRowStep == 0 && kRowStep % 8 == 0);
  int r0, c, dst;
  __device__ __forceinline__ explicit SwizzledTileLoader(int tid)
      : r0(tid / kChunks),
        c(tid % kChunks),
        dst((c / 8) * 64 * 128 + r0 * 128 + (((c % 8) ^ (r0 % 8)) << 4)) {}
  // Rows past `rows` are zero-filled (src-size 0).
  template <class Element>
  __device__ __forceinline__ void load(unsigned char* tile,
                                       const Element* src,
                                       std::int64_t row_stride,
                                       int rows) const {
    const Element* from = src + r0 * row_stride + c * 8;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const bool valid = r0 + i * kRowStep < rows;
      cp_async_16(tile + dst + i * kRowStep * 128, valid ? from + i * kRowStep * row_stride : src,
                  valid ? 16 : 0);
    }
  }
};

// kTma: tiles loaded by the copy engine (one thread issues them, the stage's mbarrier says when
// they have landed) and outputs stored by it, instead of cp.async and 16-byte stores by every
// thread. A tensor map cannot walk a sequence backwards: the reversed passes take it only in
// kDual, whose blocks are read in forward order and flipped (kFlip).
// kBoundThreads: the thread count ptxas budgets registers for (65536 / kBoundThreads per thread
// at one block per SM). The library keeps the default, its own thread count; lightning-probe-
// chains compiles the output pass with more, to time it within the registers it would keep if a
// third warpgroup shared the SM.
template <class Element,
          int kHeadDim,
          int kValueDim,
          FwdMode kMode,
          bool kTma,
          int kBoundThreads = FwdTraits<Element, kHeadDim, kValueDim>::kThreads>
__global__ void __launch_bounds__(kBoundThreads,
                                  FwdTraits<Element, kHeadDim, kValueDim>::kBlocksPerSm)
    lightning_fwd_kernel(const __grid_constant__ FwdKernelParams p) {
  using T = FwdTraits<Element, kHeadDim, kValueDim>;
  using ET = ElementTraits<Element>;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kKSteps = kHeadDim / 16;  // k-steps of the products over d
  constexpr int kHalf = T::kHalfBytes;

  constexpr bool kOut = kMode != FwdMode::kLocalState;
  constexpr bool kDual = kMode == FwdMode::kDual;
  // The fused backward pass walks the sequence backwards. With TMA its tiles land in the tensor's
  // own (forward) row order, so smem row r holds block token 63 - r: every position-dependent
  // factor (mask, decays, weights) is read at the flipped position; the products do not care.
  constexpr bool kFlip = kDual && kTma;
  constexpr int kSign = kFlip ? -1 : 1;
  // Stages of (Q, K, V) tiles, of (Q, K, V, X) in the fused backward pass, or of (K, V) in the
  // local-state pass.
  constexpr int kStages = kDual ? T::kDualStages : kOut ? T::kStages : T::kLocalStages;
  constexpr int kStageBytes = kDual  ? T::kDualStageBytes
                              : kOut ? T::kStageBytes
                                     : T::kLocalStageBytes;
  constexpr int kKOffset = kOut ? T::kQBytes : 0;
  constexpr int kXOffset = 2 * T::kQBytes + T::kVBytes;  // kDual: X after V

  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Swizzle atoms need 1024-byte alignment in the shared window itself.
  unsigned char* smem = smem_raw + ((T::kAlign - (smem_addr(smem_raw) % T::kAlign)) % T::kAlign);
  const int tid = threadIdx.x;
  const int wg = T::kWarpgroups == 1 ? 0 : tid / 128;  // warpgroup: value slice e0 = 64 wg
  const int wg_tid = tid % 128;                        // thread within the warpgroup
  const int warp = wg_tid / 32;                        // warp within the warpgroup
  const int lane = tid % 32;
  const int g = lane / 4;  // fragment row within 8
  const int q = lane % 4;  // fragment column pair

  // Output pass: P (kDual: then P2 and the bf16 state), then an output staging tile per
  // warpgroup, after the stages.
  constexpr int kExtraBytes = kDual ? T::kPBytes + T::kStateBytes : 0;
  unsigned char* sp = smem + kStages * kStageBytes;
  [[maybe_unused]] unsigned char* sp2 = sp + T::kPBytes;
  [[maybe_unused]] unsigned char* sst = sp2 + T::kPBytes;
  constexpr int kOBytes = kTma ? T::kOBytesTma : T::kOBytes;
  Element* so = reinterpret_cast<Element*>(sp + T::kPBytes + kExtraBytes + wg * kOBytes);
  float* tables =
      reinterpret_cast<float*>(smem + kStages * kStageBytes +
                               (kOut ? T::kPBytes + kExtraBytes + T::kWarpgroups * kOBytes : 0));
  float* tab_intra = tables;                  // [k + 64]
  float* tab_update = tables + T::kTable;     // [k + 64]
  float* tab_inter = tables + 2 * T::kTable;  // [k]
  float* decay = tables + 3 * T::kTable;      // [k]
  // kTma: stage s's tiles have landed when its barrier completes phase (use of the stage) % 2.
  [[maybe_unused]] std::uint64_t* full_bar =
      reinterpret_cast<std::uint64_t*>(tables + 4 * T::kTable);

  const FwdBlock where = decode_block<kMode>(p, T::kSplits);
  const std::int64_t bb = where.bb, hh = where.hh, seg = where.seg;
  const int e0 = wg * T::kSliceE;

  const TokenRange range = token_range<kMode>(p, where);
  const std::int64_t n_begin = range.begin, n_end = range.end;
  const int num_blocks = static_cast<int>((n_end - n_begin + kBlockN - 1) / kBlockN);

  fill_decay_tables<T::kThreads>(p, p.s[hh], tables, tid);
  if constexpr (kTma) {
    if (tid == 0) {
      for (int i = 0; i < kStages; ++i) mbar_init(&full_bar[i], 1);
      fence_mbar_init();
    }
    __syncthreads();
  }

  const Element* q_ptr = static_cast<const Element*>(p.q) + bb * p.q_stride[0] +
                         hh * p.q_stride[1] + n_begin * p.q_stride[2];
  const Element* k_ptr = static_cast<const Element*>(p.k) + bb * p.k_stride[0] +
                         hh * p.k_stride[1] + n_begin * p.k_stride[2];
  const Element* v_ptr = static_cast<const Element*>(p.v) + bb * p.v_stride[0] +
                         hh * p.v_stride[1] + n_begin * p.v_stride[2];
  Element* o_ptr = static_cast<Element*>(p.o) + bb * p.o_stride[0] + hh * p.o_stride[1] +
                   n_begin * p.o_stride[2] + e0;
  // kDual: x (the value width, like v) and o2 (the key width, like q), at this block's start.
  [[maybe_unused]] const Element* x_ptr = nullptr;
  [[maybe_unused]] Element* o2_ptr = nullptr;
  if constexpr (kDual) {
    x_ptr = static_cast<const Element*>(p.x) + bb * p.x_stride[0] + hh * p.x_stride[1] +
            n_begin * p.x_stride[2];
    o2_ptr = static_cast<Element*>(p.o2) + bb * p.o2_stride[0] + hh * p.o2_stride[1] +
             n_begin * p.o2_stride[2];
  }

  // The state slice S^T (kSliceE rows e, kHeadDim columns d) as a wgmma accumulator: warp w holds
  // rows 16w..16w+15; st[4j + c] is at e = 16w + g + 8 (c / 2), d = 8j + 2q + c % 2.
  float st[kHeadDim / 2];
  const int row_e = 16 * warp + g;
  load_state_fragment<kHeadDim>(st, state_source<kHeadDim, kValueDim, kMode>(p, where), e0 + row_e,
                                q);

  // Per-lane shared-memory offsets (bytes from a tile's start), each used with compile-time
  // offsets added:
  //   V^T fragments (ldmatrix.trans of V rows = tokens): row lane % 8 + 8 (lane / 16), chunk
  //   2 warp + (lane / 8) % 2, swizzled by the row's low bits (= lane % 8);
  //   P rows (stmatrix, matrix i = lane / 8 covers rows 16 warp + 8 (i % 2), key chunk j + i / 2):
  //   row 16 warp + 8 (i % 2) + lane % 8, chunk xor (i / 2) ^ (lane % 8);
  //   O staging (stmatrix.trans): token 8 (i / 2) + lane % 8, value 16 warp + 8 (i % 2).
  const int mat = lane / 8, mrow = lane % 8;
  const int off_vt = (mrow + 8 * (lane / 16)) * 128 + (((2 * warp + mat % 2) ^ mrow) << 4);
  const int off_p_row = (16 * warp + 8 * (mat % 2) + mrow) * 128;
  const int p_xor = (mat / 2) ^ mrow;
  const int off_o = (8 * (mat / 2) + mrow) * T::kOStride + 16 * warp + 8 * (mat % 2);
  //   kDual, the state as bf16 (stmatrix.trans of the A fragments sa[ks], matrix i = lane / 8
  //   covering d 16 ks + 8 (i / 2), e 16 warp + 8 (i % 2)): row d = 8 (i / 2) + lane % 8 (+16 ks),
  //   chunk (2 warp + i % 2) ^ (lane % 8); o2 staging (stmatrix, rows tokens): token
  //   16 warp + 8 (i % 2) + lane % 8, column 8 (i / 2).
  [[maybe_unused]] const int off_st =
      (8 * (mat / 2) + mrow) * 128 + (((2 * warp + mat % 2) ^ mrow) << 4);
  [[maybe_unused]] const int off_o2 =
      (16 * warp + 8 * (mat % 2) + mrow) * T::kOStride + 8 * (mat / 2);

  const SwizzledTileLoader<kHeadDim / 8, T::kThreads> qk_loader(tid);
  const SwizzledTileLoader<kValueDim / 8, T::kThreads> v_loader(tid);
  // kTma: the tensor-map row of block blk's first smem row (kFlip: the reversed block's last
  // token in forward order, negative for a partial last block: those rows read as zeros).
  [[maybe_unused]] auto tile_row = [&](int blk) {
    const std::int64_t t0 = n_begin + static_cast<std::int64_t>(blk) * kBlockN;
    return static_cast<int>(kFlip ? p.n - kBlockN - t0 : t0);
  };
  // Issue block `blk`'s tiles into its stage. TMA: thread 0, completing on the stage's barrier.
  // cp.async: every thread, always committing a group (possibly empty) so that the wait below
  // counts the same in every iteration.
  auto load_block = [&](int blk) {
    if constexpr (kTma) {
      if (tid == 0 && blk < num_blocks) {
        unsigned char* stage = smem + (blk % kStages) * kStageBytes;
        std::uint64_t* bar = &full_bar[blk % kStages];
        const int row = tile_row(blk);
        const int h = static_cast<int>(hh), b = static_cast<int>(bb);
        mbar_arrive_expect_tx(bar, kStageBytes);
        if constexpr (kOut) tma_load_5d(stage, &p.tm_q, bar, 0, row, 0, h, b);
        tma_load_5d(stage + kKOffset, &p.tm_k, bar, 0, row, 0, h, b);
        tma_load_5d(stage + kKOffset + T::kQBytes, &p.tm_v, bar, 0, row, 0, h, b);
        if constexpr (kDual) tma_load_5d(stage + kXOffset, &p.tm_x, bar, 0, row, 0, h, b);
      }
      return;
    }
    if (blk < num_blocks) {
      unsigned char* stage = smem + (blk % kStages) * kStageBytes;
      const int rows = static_cast<int>(
          min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
      const std::int64_t t0 = static_cast<std::int64_t>(blk) * kBlockN;
      if constexpr (kOut) qk_loader.load(stage, q_ptr + t0 * p.q_stride[2], p.q_stride[2], rows);
      qk_loader.load(stage + kKOffset, k_ptr + t0 * p.k_stride[2], p.k_stride[2], rows);
      v_loader.load(stage + kKOffset + T::kQBytes, v_ptr + t0 * p.v_stride[2], p.v_stride[2], rows);
      if constexpr (kDual) {
        v_loader.load(stage + kXOffset, x_ptr + t0 * p.x_stride[2], p.x_stride[2], rows);
      }
    }
    cp_async_commit();
  };

  // P = Q K^T of block `blk` (this warpgroup's keys), one wgmma group. It is issued as soon as the
  // block's tiles are visible: for the next block, before this block's outputs are staged and
  // stored, so that the product runs under those stores. Not at D = 128 with one warpgroup
  // (E = 64): its 64-column P held over the stores beside the 64-register state spilled; that
  // shape issues each block's P at the block's start.
  // The fused backward pass (kDual) has no stores to hide it under after its dK products, and
  // its registers are shorter still: it issues P at the block's start too.
  constexpr bool kPrefetchP = !kDual && kHeadDim / 2 + T::kPCols / 2 <= 80;
  [[maybe_unused]] float pacc[T::kPCols / 2];
  [[maybe_unused]] auto issue_p = [&](int blk) {
    const uint32_t sq_addr = smem_addr(smem + (blk % kStages) * kStageBytes);
    const uint32_t sk_addr = sq_addr + kKOffset;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      const uint32_t off = (ks / 4) * kHalf + (ks % 4) * 32;
      wgmma_ss<Element, T::kPCols>(pacc, wgmma_desc(sq_addr + off, 16, 1024),
                                   wgmma_desc(sk_addr + wg * T::kPCols * 128 + off, 16, 1024),
                                   ks > 0);
    }
    wgmma_commit();
  };
  // kDual: P2 = X V^T of block `blk` (this warpgroup's keys; over the value width).
  [[maybe_unused]] auto issue_p2 = [&](int blk) {
    const uint32_t stage_addr = smem_addr(smem + (blk % kStages) * kStageBytes);
    const uint32_t sx_addr = stage_addr + kXOffset;
    const uint32_t sv_addr = stage_addr + kKOffset + T::kQBytes;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kValueDim / 16; ++ks) {
      const uint32_t off = (ks / 4) * kHalf + (ks % 4) * 32;
      wgmma_ss<Element, T::kPCols>(pacc, wgmma_desc(sx_addr + off, 16, 1024),
                                   wgmma_desc(sv_addr + wg * T::kPCols * 128 + off, 16, 1024),
                                   ks > 0);
    }
    wgmma_commit();
  };
  // Mask and decay this warpgroup's keys of P (or P2) in pacc (query t = 16w + g + 8 half, key
  // u = 8J + 2q + c with J = j0 + j), to the shared tile `dst`.
  [[maybe_unused]] auto mask_store = [&](unsigned char* dst) {
    const int j0 = wg * T::kPCols / 8;
    // t - u = a + 8 half - 8 j - c (kFlip: u - t)
    mask_store_scores<Element, T::kPCols, kSign>(
        dst, pacc, tab_intra, 16 * warp + g - 2 * q - 8 * j0, j0, off_p_row, p_xor);
  };
  // Wait for block `blk`'s tiles and issue the copies of block blk + kStages - 1 into the stage of
  // block blk - 1.
  auto next_tiles = [&](int blk) {
    if constexpr (kTma) {
      mbar_wait(&full_bar[blk % kStages], (blk / kStages) & 1);
    } else {
      cp_async_wait<kStages - 2>();
      fence_proxy_async();  // the copies are read by wgmma (the async proxy)
    }
    __syncthreads();  // block blk's tiles (and, at blk 0, the tables) are visible, and every
                      // warp is done with block blk - 1's tiles, whose stage the load reuses
    load_block(blk + kStages - 1);
  };

  // kTma: output tiles handed to the copy engine so far (the staging tile alternates).
  [[maybe_unused]] int nstore = 0;
  // kFlip, the partial last block (the sequence's first tokens): its valid rows 64 - len.. sit at
  // negative tensor rows, which a TMA store does not take, so the warpgroup copies them out of
  // the swizzled staging tile itself, 16 bytes a thread (the tile is complete and not reused by
  // the copy engine; the next staging waits at a warpgroup barrier).
  [[maybe_unused]] auto copy_out_flipped = [&](const unsigned char* tile, Element* dst,
                                               std::int64_t row_stride, int rows, int blk) {
    for (int i = wg_tid; i < kBlockN * 8; i += 128) {
      const int r = i / 8, c = i % 8;
      const int t = kBlockN - 1 - r;  // the reversed block's token at smem row r
      if (t < rows) {
        *reinterpret_cast<uint4*>(
            dst + (static_cast<std::int64_t>(blk) * kBlockN + t) * row_stride + c * 8) =
            *reinterpret_cast<const uint4*>(tile + r * 128 + ((c ^ (r % 8)) << 4));
      }
    }
  };
#pragma unroll
  for (int blk = 0; blk < kStages - 1; ++blk) load_block(blk);
  next_tiles(0);
  if constexpr (kOut && kPrefetchP) {
    if (num_blocks > 0) issue_p(0);
  }
  for (int blk = 0; blk < num_blocks; ++blk) {
    if constexpr (kOut && !kPrefetchP) {
      if (blk > 0) next_tiles(blk);
      issue_p(blk);
    }
    unsigned char* sq = smem + (blk % kStages) * kStageBytes;
    unsigned char* sk = sq + kKOffset;
    unsigned char* sv = sk + T::kQBytes + wg * kHalf;  // this warpgroup's value slice
    const uint32_t sk_addr = smem_addr(sk);
    const int len =
        static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
    // The first block of the sequence takes one power of lambda fewer on the initial state.
    const int shift = (p.init_shift && seg == 0 && blk == 0) ? 1 : 0;

    [[maybe_unused]] float oacc[32];
    [[maybe_unused]] uint32_t sa[kKSteps][4];
    if constexpr (kOut) {
      const uint32_t sq_addr = smem_addr(sq);
      // 1. (P of this block is in flight.) O^T = S^T Q^T (the state before this block, as
      //    bf16/fp16 A fragments): a second group, in flight while the rest is prepared.
      pack_state_operands<Element>(sa, st);
      if constexpr (kDual) {
        // The state before this block, for the dK inter product (visible after the P barrier).
#pragma unroll
        for (int ks = 0; ks < kKSteps; ++ks) {
          stsm_x4_trans(sst + wg * T::kStateHalfBytes + off_st + ks * 2048, sa[ks][0], sa[ks][1],
                        sa[ks][2], sa[ks][3]);
        }
      }
      issue_inter_product<Element, kKSteps, kHalf>(oacc, sa, sq_addr);
    }

    // 2. V^T fragments of this warp's value rows (A operands of the intra product and, scaled by
    //    w[u] = update_scale lambda^(len-1-u) (0 past len), of the update).
    uint32_t vt[kBlockN / 16][4], vw[kBlockN / 16][4];
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) ldsm_x4_trans(vt[ks], sv + off_vt + ks * 2048);
    {
      // A fragment element layout: vt[ks][0]: tokens u, u+1 (u = 16ks + 2q); [1]: same tokens,
      // row + 8; [2], [3]: tokens u + 8, u + 9.
      // (kFlip: token 63 - u, so w[u] = update_scale lambda^(u - (64 - len)).)
      const float* w = kFlip ? tab_update + len + 2 * q : tab_update + kBlockN + len - 1 - 2 * q;
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks)
        weigh_fragment<Element, kSign>(vw[ks], vt[ks], w, ks);
    }

    // 3. S^T <- lambda^len S^T + (V^T diag(w)) K: K as an MN-major operand (rows are tokens).
    {
      const float block_decay = decay[len - shift];
#pragma unroll
      for (int i = 0; i < kHeadDim / 2; ++i) st[i] *= block_decay;
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) {
        wgmma_rs<Element, kHeadDim, 1>(st, vw[ks], wgmma_desc(sk_addr + ks * 2048, kHalf, 1024), 1);
      }
      wgmma_commit();
    }

    if constexpr (kOut) {
      // 4. Mask and decay this warpgroup's keys of P (query t = 16w + g + 8 half, key
      //    u = 8J + 2q + c with J = j0 + j), to shared memory.
      wgmma_wait<2>();
      wgmma_fence_operand(pacc);
      mask_store(sp);
      fence_proxy_async();
      if constexpr (kDual) issue_p2(blk);  // pacc is free again

      // 5. Columns of the inter part scaled by inter_scale lambda^(t + 1 - shift).
      wgmma_wait<kDual ? 2 : 1>();
      wgmma_fence_operand(oacc);
      {
        // (kFlip: query 63 - t, lambda^(64 - t - shift).)
        const float* w =
            kFlip ? tab_inter + kBlockN - shift - 2 * q : tab_inter + 1 - shift + 2 * q;
        scale_inter_columns<kSign>(oacc, w);
      }
      if constexpr (kTma) {
        // The store before last has been read out of the staging tile this block's output reuses
        // (visible to the warpgroup after the barrier).
        if (wg_tid == 0) bulk_wait_read<1>();
      }
      __syncthreads();  // P is complete (every warpgroup's keys)

      // 6. O^T += V^T P^T (intra part): P as the K-major B operand (rows are queries). V^T is
      //    read again rather than kept in registers since step 2 (the registers are short).
      uint32_t vt2[kBlockN / 16][4];
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) ldsm_x4_trans(vt2[ks], sv + off_vt + ks * 2048);
      wgmma_fence();
      const uint32_t sp_addr = smem_addr(sp);
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) {
        wgmma_rs<Element, 64, 0>(oacc, vt2[ks], wgmma_desc(sp_addr + ks * 32, 16, 1024), 1);
      }
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operand(oacc);
      wgmma_fence_operand(st);

      if constexpr (kDual) {
        wgmma_fence_operand(pacc);
        mask_store(sp2);
        fence_proxy_async();
      } else if (kPrefetchP && blk + 1 < num_blocks) {
        // The next block's tiles, and its P issued before this block's outputs are stored.
        next_tiles(blk + 1);
        issue_p(blk + 1);
      }

      // 7. Stage O^T as O (tokens, e) for coalesced stores: with TMA as a swizzled tile (token
      //    row r, value chunk c at chunk c ^ (r % 8)) that one thread hands to the copy engine.
      const std::int64_t t0 = static_cast<std::int64_t>(blk) * kBlockN;
      if constexpr (kTma) {
        unsigned char* st_tile = reinterpret_cast<unsigned char*>(so) + (nstore & 1) * kHalf;
        const int off = (8 * (mat / 2) + mrow) * 128 + (((2 * warp + mat % 2) ^ mrow) << 4);
        stage_output_transposed<Element, 128>(st_tile + off, oacc);
        fence_proxy_async();  // the staged tile is read by the copy engine (the async proxy)
        warpgroup_sync();
        if (kFlip && tile_row(blk) < 0) {
          copy_out_flipped(st_tile, o_ptr, p.o_stride[2], len, blk);
        } else {
          if (wg_tid == 0) {
            tma_store_4d(&p.tm_o, st_tile, e0, tile_row(blk), static_cast<int>(hh),
                         static_cast<int>(bb));
            bulk_commit();
          }
          ++nstore;
        }
      } else {
        stage_output_transposed<Element, T::kOStride * sizeof(Element)>(
            reinterpret_cast<unsigned char*>(so + off_o), oacc);
        warpgroup_sync();  // the staging tile is complete
        constexpr int kEChunks = T::kSliceE / 8;
#pragma unroll
        for (int i = wg_tid; i < kBlockN * kEChunks; i += 128) {
          const int t = i / kEChunks;
          const int c = i % kEChunks;
          if (t < len) {
            *reinterpret_cast<uint4*>(o_ptr + (t0 + t) * p.o_stride[2] + c * 8) =
                *reinterpret_cast<const uint4*>(so + t * T::kOStride + c * 8);
          }
        }
      }

      if constexpr (kDual) {
        // 8. o2 = X S^T (the state before this block, bf16 in sst; rows tokens, 64 columns d per
        //    chunk) scaled by inter_scale lambda^(t + 1 - shift), + P2 K (intra: K as the
        //    MN-major B operand). Chunks of 64 d go round the warpgroups; a warpgroup without a
        //    chunk of its own (D = 64, E = 128) computes one again without storing it, since a
        //    wgmma under a branch on the warpgroup would serialise every wgmma of the kernel.
        __syncthreads();  // P2 and the state tile are complete
        const uint32_t sx_addr = smem_addr(sq + kXOffset);
        const uint32_t sst_addr = smem_addr(sst);
        const uint32_t sp2_addr = smem_addr(sp2);
        constexpr int kDChunks = kHeadDim / 64;
#pragma unroll
        for (int c0 = 0; c0 < kDChunks; c0 += T::kWarpgroups) {
          const bool owner = c0 + wg < kDChunks;
          const int c = (c0 + wg) % kDChunks;
          {
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < kValueDim / 16; ++ks) {
              wgmma_ss<Element, 64>(
                  oacc, wgmma_desc(sx_addr + (ks / 4) * kHalf + (ks % 4) * 32, 16, 1024),
                  wgmma_desc(
                      sst_addr + (ks / 4) * T::kStateHalfBytes + c * 64 * 128 + (ks % 4) * 32, 16,
                      1024),
                  ks > 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_operand(oacc);
            {
              const int t = 16 * warp + g;
              const float f0 = kFlip ? tab_inter[kBlockN - shift - t] : tab_inter[t + 1 - shift];
              const float f1 =
                  kFlip ? tab_inter[kBlockN - 8 - shift - t] : tab_inter[t + 9 - shift];
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                oacc[4 * j + 0] *= f0;
                oacc[4 * j + 1] *= f0;
                oacc[4 * j + 2] *= f1;
                oacc[4 * j + 3] *= f1;
              }
            }
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < kBlockN / 16; ++ks) {
              wgmma_ss_tb<Element, 64>(oacc, wgmma_desc(sp2_addr + ks * 32, 16, 1024),
                                       wgmma_desc(sk_addr + c * kHalf + ks * 2048, kHalf, 1024), 1);
            }
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_operand(oacc);
            if constexpr (kTma) {
              // As for O: the store before last has left the staging tile this one reuses. A
              // warpgroup without a chunk of its own stages it all the same (barriers under a
              // branch on the warpgroup serialise the kernel's wgmma, C7518) but stores nothing
              // and keeps its tile count.
              if (wg_tid == 0) bulk_wait_read<1>();
              warpgroup_sync();
              unsigned char* st_tile = reinterpret_cast<unsigned char*>(so) + (nstore & 1) * kHalf;
              // Rows are tokens 16 warp + 8 (i % 2) + lane % 8 (the rows' low bits = lane % 8),
              // 16-byte chunk j + i / 2, swizzled.
              const int row = 16 * warp + 8 * (mat % 2) + mrow;
              const int x = (mat / 2) ^ mrow;
#pragma unroll
              for (int j = 0; j < 8; j += 2) {
                stsm_x4(st_tile + row * 128 + ((j ^ x) << 4),
                        ET::pack(oacc[4 * j], oacc[4 * j + 1]),
                        ET::pack(oacc[4 * j + 2], oacc[4 * j + 3]),
                        ET::pack(oacc[4 * j + 4], oacc[4 * j + 5]),
                        ET::pack(oacc[4 * j + 6], oacc[4 * j + 7]));
              }
              fence_proxy_async();
              warpgroup_sync();
              if (tile_row(blk) < 0) {
                copy_out_flipped(st_tile, o2_ptr + c * 64, p.o2_stride[2], owner ? len : 0, blk);
              } else {
                if (owner && wg_tid == 0) {
                  tma_store_4d(&p.tm_o2, st_tile, c * 64, tile_row(blk), static_cast<int>(hh),
                               static_cast<int>(bb));
                  bulk_commit();
                }
                nstore += owner ? 1 : 0;
              }
            } else {
              warpgroup_sync();  // this warpgroup's stores from the staging tile are done
#pragma unroll
              for (int j = 0; j < 8; j += 2) {
                stsm_x4(so + off_o2 + 8 * j, ET::pack(oacc[4 * j], oacc[4 * j + 1]),
                        ET::pack(oacc[4 * j + 2], oacc[4 * j + 3]),
                        ET::pack(oacc[4 * j + 4], oacc[4 * j + 5]),
                        ET::pack(oacc[4 * j + 6], oacc[4 * j + 7]));
              }
              warpgroup_sync();  // the staging tile is complete
#pragma unroll
              for (int i = wg_tid; i < kBlockN * 8; i += 128) {
                const int tt = i / 8;
                const int cc = i % 8;
                if (owner && tt < len) {
                  *reinterpret_cast<uint4*>(o2_ptr + (t0 + tt) * p.o2_stride[2] + c * 64 + cc * 8) =
                      *reinterpret_cast<const uint4*>(so + tt * T::kOStride + cc * 8);
                }
              }
            }
          }
        }
        if (kPrefetchP && blk + 1 < num_blocks) {
          next_tiles(blk + 1);
          issue_p(blk + 1);
        }
      }
    } else {
      wgmma_wait<0>();
      wgmma_fence_operand(st);
      if (blk + 1 < num_blocks) next_tiles(blk + 1);
    }
  }

  // The state after the last block: a segment's local state, or the final state.
  const StateView out = state_destination<kHeadDim, kValueDim, kMode>(p, where);
  if (out.ptr != nullptr) {
    const float extra = p.final_extra_decay && kOut ? decay[1] : 1.f;
    store_state_fragment<kHeadDim>(out, st, extra, e0 + row_e, q);
  }
  if constexpr (kTma && kOut) {
    if (wg_tid == 0) bulk_wait<0>();  // the staging tiles stay until the last store has read them
  }
}

}  // namespace lightning::detail

#include "forward_ws.cuh"

namespace lightning::detail {

// ---- fp32 inputs: exact fp32 arithmetic, SIMT ------------------------------------------------
// The blocked algorithm in plain fp32 FMAs, every decay read from a table of exp(-s k) (a
// recurrence that multiplies by a rounded lambda every token drifts: lambda_fp32^64 is not
// exp(-64 s), and the error is one-signed; it came out 5-10x less accurate than the blocked fp32
// baseline). A thread block per (b, h, segment, 64-wide value slice), 256 threads; every product
// of a 64-token block is register-tiled, each thread owning a 4 x 4 tile (a 4 x 4 x D / 64 tile of
// the state), its operands read as 16-byte vectors from shared memory:
//   P = (Q K^T) (.) M and Q S in one sweep along d (each Q vector read once for both): thread
//     (ty, tx) = (tid / 16, tid % 16) owns queries ty + 16 i against keys, and values, tx + 16 j;
//     key tiles above the diagonal (j > i) are never computed; S is read as S^T;
//   O = inter_scale lambda^(t+1) Q S + intra_scale P V: P V along keys against V^T, only key
//     chunks at or below the diagonal and, inside the diagonal chunk, only keys u <= t (a NaN
//     value cannot reach earlier queries);
//   S <- lambda^len S + K^T diag(w) V: thread (ty, tx) owns state rows d = 4 ty + c (+ 64 h) and
//     value columns 4 tx + j, rank-1 updates over the block's keys.
// Rows are padded to an odd number of 16-byte chunks (D + 4 and 68 floats), so that the 16 rows a
// half-warp reads at once (tx + 16 j) sit in distinct bank groups. Tiles arrive by cp.async, two
// stages; V lands as it is and is turned in place into diag(w) V (the update's operand) while V^T
// (the intra product's) is written beside it.
template <int kHeadDim, int kValueDim>
struct Fp32Traits {
  static constexpr int kBlockN = 64;
  static constexpr int kSliceE = 64;
  static constexpr int kThreads = 256;
  static constexpr int kSplits = kValueDim / kSliceE;
  static constexpr int kHalves = kHeadDim / 64;   // state rows per thread: 4 per half
  static constexpr int kQK = kHeadDim + 4;        // row stride (floats) of Q, K and S^T
  static constexpr int kPV = kBlockN + 4;         // row stride of P and V^T
  static constexpr int kQFloats = kBlockN * kQK;  // Q or K
  static constexpr int kVFloats = kBlockN * kSliceE;
  static constexpr int kStageFloats = 2 * kQFloats + kVFloats;
  // S^T (kSliceE rows e) and P (kBlockN rows t) share one region: S^T is read before P is written.
  static constexpr int kRFloats = kSliceE * kQK;
  static_assert(kRFloats >= kBlockN * kPV, "P fits in S^T's space");
  static constexpr int kVtFloats = kSliceE * kPV;
  static constexpr int kTableFloats = 68;  // lambda^k, k = 0..64
  // Two stages, S^T / P, V^T, the table: 214 KiB at D = 128, 134 KiB at D = 64.
  static constexpr std::size_t kSmemBytes =
      (2 * kStageFloats + kRFloats + kVtFloats + kTableFloats) * sizeof(float);
  static_assert(kSmemBytes <= 227 * 1024, "fp32 kernel shared memory");
};

__device__ __forceinline__ float4 lds4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ float elem(const float4& v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}
// acc + a . b, summed in order x, y, z, w.
__device__ __forceinline__ float dot4(const float4& a, const float4& b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

template <int kHeadDim, int kValueDim, FwdMode kMode>
__global__ void __launch_bounds__(Fp32Traits<kHeadDim, kValueDim>::kThreads)
    lightning_fwd_fp32_kernel(const __grid_constant__ FwdKernelParams p) {
  using T = Fp32Traits<kHeadDim, kValueDim>;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kQK = T::kQK;
  constexpr int kPV = T::kPV;
  constexpr int kE = T::kSliceE;
  constexpr bool kOut = kMode == FwdMode::kOutput;
  extern __shared__ __align__(16) float smem_f[];
  float* stages = smem_f;                    // 2 x (Q, K, V)
  float* sr = stages + 2 * T::kStageFloats;  // S^T (kE, kQK), then P (kBlockN, kPV)
  float* svt = sr + T::kRFloats;             // V^T (kE, kPV)
  float* decay = svt + T::kVtFloats;         // lambda^k

  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;

  const FwdBlock where = decode_block<kMode>(p, T::kSplits);
  const std::int64_t bb = where.bb, hh = where.hh, seg = where.seg;
  const int e0 = where.slice * kE;
  const TokenRange range = token_range<kMode>(p, where);
  const std::int64_t n_begin = range.begin, n_end = range.end;
  const float s = p.s[hh];
  if (tid <= kBlockN) decay[tid] = expf(-s * static_cast<float>(tid));

  const float* q = static_cast<const float*>(p.q) + bb * p.q_stride[0] + hh * p.q_stride[1];
  const float* k = static_cast<const float*>(p.k) + bb * p.k_stride[0] + hh * p.k_stride[1];
  const float* v = static_cast<const float*>(p.v) + bb * p.v_stride[0] + hh * p.v_stride[1] + e0;
  float* o = static_cast<float*>(p.o) + bb * p.o_stride[0] + hh * p.o_stride[1] + e0;

  // The state: st[h][c][j] = S[4 ty + c + 64 h][e0 + 4 tx + j]; f(element, its index in a
  // state view) for each.
  float st[T::kHalves][4][4];
  auto for_each_state = [&](auto&& f) {
#pragma unroll
    for (int h = 0; h < T::kHalves; ++h)
#pragma unroll
      for (int c = 0; c < 4; ++c)
#pragma unroll
        for (int j = 0; j < 4; ++j) f(st[h][c][j], 4 * ty + c + 64 * h, e0 + 4 * tx + j);
  };
  {
    const StateView init = state_source<kHeadDim, kValueDim, kMode>(p, where);
    for_each_state(
        [&](float& x, int d, int e) { x = init.ptr ? init.ptr[d * init.sd + e * init.se] : 0.f; });
  }
  // S^T as the B operand of Q S: row e, 16-byte vectors along d.
  auto store_state = [&] {
#pragma unroll
    for (int h = 0; h < T::kHalves; ++h)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        *reinterpret_cast<float4*>(sr + (4 * tx + j) * kQK + 4 * ty + 64 * h) =
            make_float4(st[h][0][j], st[h][1][j], st[h][2][j], st[h][3][j]);
      }
  };
  if constexpr (kOut) store_state();

  // The tiles of the block at t0 into `stage`, rows past the end zero-filled; always a group.
  auto load_block = [&](std::int64_t t0, int stage) {
    if (t0 < n_end) {
      float* sq = stages + stage * T::kStageFloats;
      float* sk = sq + T::kQFloats;
      float* sv = sk + T::kQFloats;
      const int len = static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - t0));
      constexpr int kDChunks = kHeadDim / 4, kEChunks = kE / 4;
      for (int i = tid; i < kBlockN * kDChunks; i += T::kThreads) {
        const int r = i / kDChunks, c = i % kDChunks;
        const bool valid = r < len;
        if constexpr (kOut) {
          cp_async_16(sq + r * kQK + 4 * c, valid ? q + (t0 + r) * p.q_stride[2] + 4 * c : q,
                      valid ? 16 : 0);
        }
        cp_async_16(sk + r * kQK + 4 * c, valid ? k + (t0 + r) * p.k_stride[2] + 4 * c : k,
                    valid ? 16 : 0);
      }
      for (int i = tid; i < kBlockN * kEChunks; i += T::kThreads) {
        const int r = i / kEChunks, c = i % kEChunks;
        const bool valid = r < len;
        cp_async_16(sv + r * kE + 4 * c, valid ? v + (t0 + r) * p.v_stride[2] + 4 * c : v,
                    valid ? 16 : 0);
      }
    }
    cp_async_commit();
  };

  load_block(n_begin, 0);
  int it = 0;
  for (std::int64_t t0 = n_begin; t0 < n_end; t0 += kBlockN, ++it) {
    const int len = static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - t0));
    const int shift = (p.init_shift && seg == 0 && t0 == n_begin) ? 1 : 0;
    float* sq = stages + (it & 1) * T::kStageFloats;
    float* sk = sq + T::kQFloats;
    float* sv = sk + T::kQFloats;
    load_block(t0 + kBlockN, (it & 1) ^ 1);  // that stage was last read before the loop's end
    cp_async_wait<1>();
    __syncthreads();  // this block's tiles (and at first the table and S^T) are visible

    // V -> diag(w) V in place, w[u] = update_scale lambda^(len-1-u) (rows past len are zeros);
    // V^T beside it for the intra product. Thread: key u = i % 64, values 4 (i / 64)...
    for (int i = tid; i < kBlockN * (kE / 4); i += T::kThreads) {
      const int u = i % kBlockN, c = i / kBlockN;
      float4 x = lds4(sv + u * kE + 4 * c);
      if constexpr (kOut) {
        svt[(4 * c + 0) * kPV + u] = x.x;
        svt[(4 * c + 1) * kPV + u] = x.y;
        svt[(4 * c + 2) * kPV + u] = x.z;
        svt[(4 * c + 3) * kPV + u] = x.w;
      }
      const float w = u < len ? p.update_scale * decay[len - 1 - u] : 0.f;
      x.x *= w;
      x.y *= w;
      x.z *= w;
      x.w *= w;
      *reinterpret_cast<float4*>(sv + u * kE + 4 * c) = x;
    }

    if constexpr (kOut) {
      // Q S (the state before this block) and Q K^T in one sweep over d, sharing the Q reads:
      // queries ty + 16 i against values / keys tx + 16 j (key tiles j > i are all masked).
      float inter[4][4] = {};
      float acc[4][4] = {};
#pragma unroll 2
      for (int d = 0; d < kHeadDim; d += 4) {
        float4 a[4], b[4], c[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = lds4(sq + (ty + 16 * i) * kQK + d);
#pragma unroll
        for (int j = 0; j < 4; ++j) b[j] = lds4(sr + (tx + 16 * j) * kQK + d);
#pragma unroll
        for (int j = 0; j < 4; ++j) c[j] = lds4(sk + (tx + 16 * j) * kQK + d);
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            inter[i][j] = dot4(a[i], b[j], inter[i][j]);
            if (j <= i) acc[i][j] = dot4(a[i], c[j], acc[i][j]);
          }
      }
      __syncthreads();  // every thread is done with S^T (V^T and diag(w) V are complete)
                        // P = (Q K^T) (.) M over S^T's space.
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int t = ty + 16 * i, u = tx + 16 * j;
          // A select, not a product with a zero: a NaN key must not reach earlier queries.
          sr[t * kPV + u] = (j <= i && u <= t) ? acc[i][j] * decay[t - u] : 0.f;
        }
      __syncthreads();  // P is complete

      // P V: key chunks below the diagonal whole, the diagonal chunk only up to the query.
      float intra[4][4] = {};
#pragma unroll
      for (int u4 = 0; u4 < kBlockN / 4; ++u4) {
        float4 b[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) b[j] = lds4(svt + (tx + 16 * j) * kPV + 4 * u4);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if (u4 >= 4 * (i + 1)) continue;  // keys past every query of this row group
          const float4 a = lds4(sr + (ty + 16 * i) * kPV + 4 * u4);
          if (u4 < 4 * i) {
#pragma unroll
            for (int j = 0; j < 4; ++j) intra[i][j] = dot4(a, b[j], intra[i][j]);
          } else {
            // Keys u = 16 i + 4 (u4 - 4 i) + c against the query 16 i + ty.
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              if (4 * (u4 - 4 * i) + c <= ty) {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                  intra[i][j] = fmaf(elem(a, c), elem(b[j], c), intra[i][j]);
              }
            }
          }
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int t = ty + 16 * i;
        if (t < len) {
          const float f = p.inter_scale * decay[t + 1 - shift];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            o[(t0 + t) * p.o_stride[2] + tx + 16 * j] =
                fmaf(f, inter[i][j], p.intra_scale * intra[i][j]);
          }
        }
      }
    } else {
      __syncthreads();  // diag(w) V is complete
    }

    // S <- lambda^len S + K^T diag(w) V, the sum from zero over the block's keys.
    {
      float upd[T::kHalves][4][4] = {};
#pragma unroll 4
      for (int u = 0; u < kBlockN; ++u) {
        const float4 b = lds4(sv + u * kE + 4 * tx);
#pragma unroll
        for (int h = 0; h < T::kHalves; ++h) {
          const float4 a = lds4(sk + u * kQK + 4 * ty + 64 * h);
#pragma unroll
          for (int c = 0; c < 4; ++c)
#pragma unroll
            for (int j = 0; j < 4; ++j) upd[h][c][j] = fmaf(elem(a, c), elem(b, j), upd[h][c][j]);
        }
      }
      const float dl = decay[len - shift];
#pragma unroll
      for (int h = 0; h < T::kHalves; ++h)
#pragma unroll
        for (int c = 0; c < 4; ++c)
#pragma unroll
          for (int j = 0; j < 4; ++j) st[h][c][j] = fmaf(dl, st[h][c][j], upd[h][c][j]);
    }
    __syncthreads();                    // every thread is done with this stage, P and V^T
    if constexpr (kOut) store_state();  // visible after the next block's first barrier
  }
  cp_async_wait<0>();  // the (empty) group issued past the end

  const StateView out = state_destination<kHeadDim, kValueDim, kMode>(p, where);
  if (out.ptr != nullptr) {
    const float extra = p.final_extra_decay && kOut ? decay[1] : 1.f;
    for_each_state([&](float x, int d, int e) { out.ptr[d * out.sd + e * out.se] = extra * x; });
  }
}

// ---- the scan over segments ---------------------------------------------------------------
// One thread per (b, h, d, e): walks the pieces of segments 0..S-2 in order, replacing the local
// state of each segment's first piece with the incoming state of that segment, and stores the
// last segment's incoming state in the last slot.
__global__ void lightning_segment_scan_kernel(const __grid_constant__ FwdKernelParams p,
                                              int d_dim,
                                              int e_dim);

// ---- launchers ----------------------------------------------------------------------------

void run_segment_scan(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream);

// False with LIGHTNING_NO_WS=1: the output passes at D = E = 128 take lightning_fwd_kernel instead
// of the warp-specialised kernel (the A/B baseline).
bool warp_specialised_allowed();

// The passes of one tensor-core run: with segments, the local-state pass and the scan, then the
// output pass in mode kOutMode (kOutput, or kDual for the backward's fused dV / dK pass).
template <class Element, int kHeadDim, int kValueDim, FwdMode kOutMode>
void run_passes(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  using T = FwdTraits<Element, kHeadDim, kValueDim>;
  auto launch = [&](auto kernel, std::int64_t segments, std::size_t smem) {
    const std::int64_t blocks = kp.b * kp.h * segments * T::kSplits;
    LIGHTNING_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
    kernel<<<static_cast<unsigned>(blocks), T::kThreads, smem, stream>>>(kp);
    LIGHTNING_CHECK_LAUNCH();
  };
  auto passes = [&](auto tma) {
    constexpr bool kTma = decltype(tma)::value;
    constexpr bool kDual = kOutMode == FwdMode::kDual;
    // The local-state pass loads with cp.async in every pass: measured faster than TMA at the
    // lengths that take segments (64k / 128k, D = E = 128: +1.7% / +2.1% forward, +0.9%
    // backward; D = E = 64: +1.4% / +3.0%; kernels/README.md, v9). It also walks the fused
    // pass's reversed views, which only kDual reads as flipped boxes.
    if (kp.segments > 1) {
      launch(lightning_fwd_kernel<Element, kHeadDim, kValueDim, FwdMode::kLocalState, false>,
             (kp.segments - 1) * kp.local_pieces, T::kLocalSmemBytes);
      run_segment_scan(kp, shape, stream);
    }
    if (kp.state_only) return;
    if constexpr (kTma && kOutMode == FwdMode::kOutput && kHeadDim == WsFwdTraits::kDim &&
                  kValueDim == WsFwdTraits::kDim) {
      const auto kernel = lightning_fwd_ws_kernel<Element>;
      // Its output warpgroups' setmaxnreg increase takes registers the P warpgroup gave back
      // from the block's launch allocation; a build that allocated fewer would wait for ever.
      static const bool fits = [&] {
        cudaFuncAttributes attr{};
        return cudaFuncGetAttributes(&attr, kernel) == cudaSuccess &&
               WsFwdTraits::launch_fits(attr.numRegs);
      }();
      if (fits && warp_specialised_allowed()) {
        LIGHTNING_CUDA_CHECK(cudaFuncSetAttribute(kernel,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(WsFwdTraits::kSmemBytes)));
        kernel<<<static_cast<unsigned>(kp.b * kp.h * kp.segments), WsFwdTraits::kThreads,
                 WsFwdTraits::kSmemBytes, stream>>>(kp, nullptr, nullptr);
        LIGHTNING_CHECK_LAUNCH();
        return;
      }
    }
    launch(lightning_fwd_kernel<Element, kHeadDim, kValueDim, kOutMode, kTma>, kp.segments,
           kDual ? (kTma ? T::kDualTmaSmemBytes : T::kDualSmemBytes)
                 : (kTma ? T::kTmaSmemBytes : T::kSmemBytes));
  };
  if (kp.use_tma) {
    passes(std::true_type{});
  } else {
    passes(std::false_type{});
  }
}

template <class Element, int kHeadDim, int kValueDim>
void run_forward(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  run_passes<Element, kHeadDim, kValueDim, FwdMode::kOutput>(kp, shape, stream);
}

// The backward's fused dV / dK pass (kp.x, kp.o2 set): the same segments as run_forward.
template <class Element, int kHeadDim, int kValueDim>
void run_backward_dual(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  run_passes<Element, kHeadDim, kValueDim, FwdMode::kDual>(kp, shape, stream);
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
    launch(lightning_fwd_fp32_kernel<kHeadDim, kValueDim, FwdMode::kLocalState>,
           (kp.segments - 1) * kp.local_pieces);
    run_segment_scan(kp, shape, stream);
  }
  if (kp.state_only) return;
  launch(lightning_fwd_fp32_kernel<kHeadDim, kValueDim, FwdMode::kOutput>, kp.segments);
}

// Defined once each in kernels/instantiations/ (one translation unit per instantiation).
#define LIGHTNING_FWD_EXTERN(Element, D, E)                                                   \
  extern template void run_forward<Element, D, E>(const FwdKernelParams&, const Shape&,       \
                                                  cudaStream_t);                              \
  extern template void run_backward_dual<Element, D, E>(const FwdKernelParams&, const Shape&, \
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
