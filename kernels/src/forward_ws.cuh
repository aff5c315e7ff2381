// The warp-specialised output pass (v10): bf16 / fp16, D = E = 128, TMA loads and stores; the
// same blocked algorithm and the same arithmetic as lightning_fwd_kernel's output pass (its
// outputs are the same bits), with the work of a 64-token block split differently. run_passes
// launches it for the output passes of that shape (the forward, and the backward's dQ pass) where
// the tensor maps exist, unless LIGHTNING_NO_WS=1. Included by forward.cuh, after the kernel
// whose helpers it uses.
//
// Why: lightning_fwd_kernel's two warpgroups walk each block in step (a block-wide barrier for
// the tiles and one for the shared P), so the element work of a block (masking P, weighting V^T,
// packing the state, staging the outputs) and its tensor work add up instead of overlapping: 1.77
// us per block alone against about 0.85 us of tensor work; this kernel takes 1.34 us
// (kernels/README.md, lightning-probe-chains).
//
// Three warpgroups (384 threads), linked only by mbarriers:
// - warpgroup 0 (the P warpgroup, few registers): thread 0 issues each block's Q, K and V tiles
//   by TMA; the warpgroup computes the whole P = Q K^T (m64n64k16), masks and decays it and
//   stores it to one of two P buffers. It runs up to two blocks ahead of the outputs.
// - warpgroups 1 and 2 (the output warpgroups, value slices 0..63 and 64..127, many registers):
//   each holds its slice of S^T and per block decays it, issues O^T = S^T Q^T and the update
//   S^T = lambda^len S^T + (V^T diag(w)) K, then O^T += V^T P^T once its P buffer is full, and
//   stages and stores its outputs by TMA. Neither waits for the other: they share only read-only
//   tiles.
// Barriers: full[stage] (the tiles landed; TMA transactions), empty[stage] (every warp of the
// three warpgroups is done reading the stage: 12 arrivals), pfull[buffer] (128 arrivals of the P
// warpgroup, each after its own proxy fence), pempty[buffer] (the 8 output warps).
// Registers by setmaxnreg: the P warpgroup gives its share to the output warpgroups.
// Shared memory: 3 stages x (Q, K, V: 16 KiB each) + 2 P buffers x 8 KiB + 2 output warpgroups x
// 2 staging tiles x 8 KiB + tables 2 KiB + barriers = 195 KiB, one thread block per SM.
//
// The library instantiates kVariant 1 without kChained; lightning-probe-chains also times the
// other orders and the chained short-piece scheme (below), which are experiments.
#pragma once

namespace lightning::detail {

template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Named barriers of the two output warpgroups (256 threads): one waits, the other arrives.
__device__ __forceinline__ void named_barrier_sync(int id) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}

__device__ __forceinline__ int ld_acquire_gpu(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_gpu(int* p, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ unsigned long long global_timer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}

struct WsFwdTraits {
  static constexpr int kBlockN = 64;
  static constexpr int kDim = 128;  // D = E
  static constexpr int kThreads = 384;
  static constexpr int kStages = 3;
  static constexpr int kHalf = kBlockN * 128;   // a (64, 64) 16-bit tile, 128-byte swizzle
  static constexpr int kTileBytes = 2 * kHalf;  // Q, K or V: (64, 128)
  static constexpr int kStageBytes = 3 * kTileBytes;
  static constexpr int kPBuffers = 2;
  static constexpr int kOBytes = 2 * kHalf;  // per output warpgroup: two staging tiles
  static constexpr int kTable = 132;
  static constexpr int kTableBytes = 4 * kTable * 4;
  // full, empty, pfull, pempty, and wready (kSweep 1: a stage's V weighted in place).
  static constexpr int kBarriers = 3 * kStages + 2 * kPBuffers;
  static constexpr std::size_t kSmemBytes =
      kStages * kStageBytes + kPBuffers * kHalf + 2 * kOBytes + kTableBytes + 8 * kBarriers + 1024;
  static_assert(kSmemBytes <= 227 * 1024);
  // setmaxnreg moves registers between the warpgroups of the block's allocation at launch, 168 a
  // thread (65536 / 384, rounded down to a multiple of 8): an increase waits until the pool has
  // them, so kPRegs + 2 kOutRegs > 3 x 168 would wait for ever.
  static constexpr int kLaunchRegs = 168;
  static constexpr int kPRegs = 104;
  static constexpr int kOutRegs = 200;
  static_assert(kPRegs + 2 * kOutRegs <= 3 * kLaunchRegs && kPRegs % 8 == 0 && kOutRegs % 8 == 0);
  // Whether a build that allocated `regs` registers a thread at launch can hand out the split.
  static constexpr bool launch_fits(int regs) { return 3 * regs >= kPRegs + 2 * kOutRegs; }
};

// One segment per thread block (p.segments == 1 or the library's segment layout: the incoming
// state comes from state_source, as in lightning_fwd_kernel), tensor maps encoded (p.use_tma).
// kVariant, the output warpgroups' order within a block (the probe times each):
//   0: as the shipped pass (inter product, V^T weighted, state decayed, update);
//   1: the state decayed before the inter product is issued;
//   2: the update issued before the inter product;
//   3: as 1, with V^T kept in registers for the intra product instead of read again;
//   4: as 1, the output warpgroups taking turns to issue (named barriers, as FlashAttention-3's
//      ping-pong of its two consumer warpgroups).
//
// kChained (with kVariant 1): the chained short-piece scheme of kernels/README.md ("the one route
// left"). p.segments pieces of p.segment_len tokens per (b, h); one thread block per piece, which
// claims its piece in order (chain_sync[0], an atomic counter: every piece before it has a running
// thread block, so the waits below cannot deadlock), pieces of the same index for every head
// first. A thread block
//   A. sweeps its piece's K and V into the piece's local state S_loc (the update from zero);
//   B. waits until the state entering its piece, S_in(j), is published (chain_sync[1 + chain] >=
//      j), reads it, publishes S_in(j + 1) = lambda^len S_in(j) + S_loc(j) for the next piece
//      (two workspace slots per chain are enough: S_in(j + 2) is written only after S_in(j) was
//      read, through the chain), and
//   C. runs the output pass over its piece from S_in(j), its K and V read again, from L2 if they
//      are still there.
// chain_sync must be zero at launch; the chain starts from a zero state (p.initial_state is not
// read: the probe, its only caller, passes none). trace (kChained, may be null): per piece, in
// claim order, 8 words: the SM, then global-timer nanoseconds at the claim, after the sweep, once
// the entering state is there, after the hand-over, and at the end. kL2Hints (kChained only): the
// sweep's K and V are loaded as lines for L2 to keep (evict_last), the outputs' tiles as lines to
// drop first (their last use), so that more of a piece's K and V are still in L2 when its outputs
// read them again.
//
// kProfile (not kChained; the probe's question: how much time the P warpgroup has to spare):
// per thread block, 8 words of SM clock cycles into trace[8 blockIdx.x + i]: the P warpgroup's
// thread 0 (it also issues the loads) over its whole loop, and within it waiting for a stage's
// tiles, for a P buffer to be free and for a stage to be empty before refilling it; then output
// thread 128 over its loop, waiting for the tiles, for P, and for the staging tile's last store.
//
// kOutputsFirst (kChained only): the same chain, a piece's work in the other order. A thread block
//   A. runs the output pass over its piece from a zero state, writing O_loc to o and keeping the
//      piece's local state S_loc (the update runs as part of the outputs),
//   B. hands the state over as above (S_in(j + 1) = lambda^len S_in(j) + S_loc(j)), and
//   C. unless its piece is a chain's first, corrects its outputs: o = O_loc + inter_scale
//      lambda^(t + 1) q_t S_t with S_t = lambda^(64 b) S_in(j) for block b, reading Q and O_loc
//      again (from L2 where they still are). C is the inter product alone: a third of a block's
//      products, where the sweep of the other order is another third with K and V from memory.
//      o is rounded twice (O_loc, then the sum): within a unit of the last place of the library's.
//
// kSweep (kChained, the sweep's order), how A is done: 0 as above, block by block; 1 (the "fast
// sweep") without its per-block chain of waits: the P warpgroup, idle in the sweep's blocks
// otherwise, scales each token row of the stage's V in place by its weight over the whole piece,
// update_scale lambda^(len_piece - 1 - t) (0 past the piece), and the output warpgroups issue the
// update from shared memory (A = the weighted V as an MN-major operand, B = K) with no decay of
// the state between blocks, keeping one block's products in flight: S_loc = V^T diag(w) K over the
// piece, the same sum as the blocked recurrence with its terms weighted once instead of decayed
// block by block; 2 not at all (timing only: S_loc is taken as zero, so the outputs lack every
// piece's contribution to the pieces after it, but the chain, its hand-overs and the outputs run
// as in 0, the outputs now reading K and V from memory: the schedule's time if its sweep cost
// nothing).
template <class Element,
          int kVariant = 1,
          bool kChained = false,
          bool kL2Hints = false,
          bool kProfile = false,
          bool kOutputsFirst = false,
          int kSweep = 0>
__global__ void __launch_bounds__(WsFwdTraits::kThreads, 1)
    lightning_fwd_ws_kernel(const __grid_constant__ FwdKernelParams p,
                            int* chain_sync,
                            unsigned long long* trace) {
  using T = WsFwdTraits;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kDim = T::kDim;
  constexpr int kKSteps = kDim / 16;
  constexpr int kHalf = T::kHalf;
  constexpr int kStages = T::kStages;

  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_addr(smem_raw) % 1024)) % 1024);
  unsigned char* sp_base = smem + kStages * T::kStageBytes;
  unsigned char* so_base = sp_base + T::kPBuffers * kHalf;
  float* tables = reinterpret_cast<float*>(so_base + 2 * T::kOBytes);
  float* tab_intra = tables;                  // [k + 64]
  float* tab_update = tables + T::kTable;     // [k + 64]
  float* tab_inter = tables + 2 * T::kTable;  // [k]
  float* decay = tables + 3 * T::kTable;      // [k]
  std::uint64_t* full_bar = reinterpret_cast<std::uint64_t*>(tables + 4 * T::kTable);
  std::uint64_t* empty_bar = full_bar + kStages;
  std::uint64_t* pfull_bar = empty_bar + kStages;
  std::uint64_t* pempty_bar = pfull_bar + T::kPBuffers;
  std::uint64_t* wready_bar = pempty_bar + T::kPBuffers;

  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int wg_tid = tid % 128;
  const int warp = wg_tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;
  const int q = lane % 4;
  const int mat = lane / 8, mrow = lane % 8;

  FwdBlock where;
  [[maybe_unused]] int claimed_id = 0;
  if constexpr (kChained) {
    static_assert(kVariant == 1, "the chained pass takes variant 1's order");
    __shared__ int claimed;
    if (tid == 0) claimed = atomicAdd(chain_sync, 1);
    __syncthreads();
    const std::int64_t chains = p.b * p.h;
    const std::int64_t chain = claimed % chains;
    where.seg = claimed / chains;
    where.hh = chain % p.h;
    where.bb = chain / p.h;
    where.slice = 0;
    claimed_id = claimed;
    if (trace != nullptr && tid == 0) {
      unsigned smid;
      asm volatile("mov.u32 %0, %%smid;\n" : "=r"(smid));
      trace[8 * claimed_id + 0] = smid;
      trace[8 * claimed_id + 1] = global_timer();
    }
  } else {
    where = decode_block<FwdMode::kOutput>(p, 1);
  }
  const std::int64_t bb = where.bb, hh = where.hh, seg = where.seg;
  const TokenRange range = token_range<FwdMode::kOutput>(p, where);
  const std::int64_t n_begin = range.begin, n_end = range.end;
  const int num_blocks = static_cast<int>((n_end - n_begin + kBlockN - 1) / kBlockN);
  // The stages see "virtual blocks": kChained, the piece's blocks twice (K and V for the sweep,
  // then Q, K and V for the outputs); kOutputsFirst, Q, K and V for the outputs, then (but for a
  // chain's first piece) Q and O_loc for the corrections.
  static_assert(!kOutputsFirst || (kChained && !kL2Hints), "outputs first is a chained order");
  static_assert(kSweep == 0 || (kChained && !kOutputsFirst), "kSweep is of the sweep's order");
  const int base = kChained && !kOutputsFirst && kSweep != 2 ? num_blocks : 0;
  const bool corrects = kOutputsFirst && seg > 0;
  const int total = base + num_blocks + (corrects ? num_blocks : 0);
  const int output_end = base + num_blocks;  // the virtual blocks that compute P
  constexpr int kOlocBarrier = 7;  // kOutputsFirst: O_loc stored (2 output warps, P warp 0)

  fill_decay_tables<T::kThreads>(p, p.s[hh], tables, tid);
  if (tid == 0) {
    for (int i = 0; i < kStages; ++i) {
      mbar_init(&full_bar[i], 1);
      mbar_init(&empty_bar[i], 12);
    }
    for (int i = 0; i < T::kPBuffers; ++i) {
      mbar_init(&pfull_bar[i], 128);
      mbar_init(&pempty_bar[i], 8);
    }
    if constexpr (kSweep == 1) {
      for (int i = 0; i < kStages; ++i) mbar_init(&wready_bar[i], 128);
    }
    fence_mbar_init();
  }
  __syncthreads();

  // mbar_wait, and with kProfile the cycles it took added to acc.
  auto timed_wait = [](std::uint64_t* bar, int phase, long long& acc) {
    if constexpr (kProfile) {
      const long long t = clock64();
      mbar_wait(bar, phase);
      acc += clock64() - t;
    } else {
      mbar_wait(bar, phase);
    }
  };
  auto tile_row = [&](int blk) {
    return static_cast<int>(n_begin + static_cast<std::int64_t>(blk) * kBlockN);
  };

  if (wg == 0) {
    // ---- the P warpgroup (and thread 0, the loads) ----
    setmaxnreg_dec<T::kPRegs>();
    auto load_block = [&](int vi) {
      unsigned char* stage = smem + (vi % kStages) * T::kStageBytes;
      std::uint64_t* bar = &full_bar[vi % kStages];
      if constexpr (kOutputsFirst) {
        if (vi >= output_end) {
          // A correction block: Q, and O_loc's two 64-value halves where K goes.
          const int row = tile_row(vi - output_end);
          const int h = static_cast<int>(hh), b = static_cast<int>(bb);
          mbar_arrive_expect_tx(bar, 2 * T::kTileBytes);
          tma_load_5d(stage, &p.tm_q, bar, 0, row, 0, h, b);
          tma_load_4d(stage + T::kTileBytes, &p.tm_o, bar, 0, row, h, b);
          tma_load_4d(stage + T::kTileBytes + kHalf, &p.tm_o, bar, 64, row, h, b);
          return;
        }
      }
      const bool sweep = vi < base;
      const int row = tile_row(sweep ? vi : vi - base);
      const int h = static_cast<int>(hh), b = static_cast<int>(bb);
      mbar_arrive_expect_tx(bar, sweep ? 2 * T::kTileBytes : T::kStageBytes);
      if constexpr (kL2Hints) {
        const std::uint64_t policy = sweep ? createpolicy_evict_last() : createpolicy_evict_first();
        if (!sweep) tma_load_5d_hint(stage, &p.tm_q, bar, 0, row, 0, h, b, policy);
        tma_load_5d_hint(stage + T::kTileBytes, &p.tm_k, bar, 0, row, 0, h, b, policy);
        tma_load_5d_hint(stage + 2 * T::kTileBytes, &p.tm_v, bar, 0, row, 0, h, b, policy);
        return;
      }
      if (!sweep) tma_load_5d(stage, &p.tm_q, bar, 0, row, 0, h, b);
      tma_load_5d(stage + T::kTileBytes, &p.tm_k, bar, 0, row, 0, h, b);
      tma_load_5d(stage + 2 * T::kTileBytes, &p.tm_v, bar, 0, row, 0, h, b);
    };
    // kOutputsFirst: the corrections' loads wait until O_loc is stored (below).
    const int load_end = kOutputsFirst ? output_end : total;
    if (tid == 0) {
      for (int vi = 0; vi < kStages - 1 && vi < load_end; ++vi) load_block(vi);
    }
    __syncwarp();
    // Query t = 16 warp + g + 8 half against key u = 8 j + 2 q + c: t - u = a + 8 half - 8 j - c.
    const int a = 16 * warp + g - 2 * q;
    const int off_p_row = (16 * warp + 8 * (mat % 2) + mrow) * 128;
    const int p_xor = (mat / 2) ^ mrow;
    float pacc[32];
    static_assert(!(kProfile && kChained), "the profile is of the library's output pass");
    [[maybe_unused]] long long prof[4] = {0, 0, 0, 0};  // kProfile: loop, full, pempty, empty
    if constexpr (kProfile) prof[0] = clock64();
    for (int vi = 0; vi < output_end; ++vi) {
      const int stage = vi % kStages;
      timed_wait(&full_bar[stage], (vi / kStages) & 1, prof[1]);
      auto load_ahead = [&] {
        // The tiles of virtual block vi + 2 into the stage of vi - 1, once everyone has read it.
        if (tid == 0 && vi + kStages - 1 < load_end) {
          const int nb = vi + kStages - 1;
          if (nb >= kStages)
            timed_wait(&empty_bar[nb % kStages], ((nb / kStages) - 1) & 1, prof[3]);
          load_block(nb);
        }
        __syncwarp();
      };
      if (vi < base) {
        if constexpr (kSweep == 1) {
          // V's token rows scaled in place by w(t) = update_scale lambda^(len - 1 - u)
          // lambda^rest (u: the row in this block, len: its tokens in the piece, rest: the
          // piece's tokens after it). A row is 128 bytes of each 8 KiB half, its 16-byte chunks
          // swizzled within it: a chunk's row is its offset / 128.
          const int len = static_cast<int>(
              min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - vi * kBlockN));
          const float rest = static_cast<float>(n_end - n_begin - vi * kBlockN - len);
          const float c = expf(-p.s[hh] * rest);
          unsigned char* sv_all = smem + stage * T::kStageBytes + 2 * T::kTileBytes;
#pragma unroll
          for (int i = 0; i < T::kTileBytes / 16 / 128; ++i) {
            const int byte = 16 * (wg_tid + 128 * i);
            const int u = (byte % kHalf) / 128;
            const float w = tab_update[kBlockN + len - 1 - u] * c;
            uint4* chunk = reinterpret_cast<uint4*>(sv_all + byte);
            uint4 x = *chunk;
            uint32_t* e = reinterpret_cast<uint32_t*>(&x);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const float2 f = ElementTraits<Element>::unpack(e[j]);
              e[j] = ElementTraits<Element>::pack(f.x * w, f.y * w);
            }
            *chunk = x;
          }
          fence_proxy_async();  // the weighted V is read by wgmma (the async proxy)
          mbar_arrive(&wready_bar[stage]);
        }
        // The sweep's stages: nothing (else) to read here (arriving only after the stage is full
        // keeps these arrivals in the right phase).
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty_bar[stage]);
        load_ahead();
        continue;
      }
      const int blk = vi - base;
      const int buf = blk % T::kPBuffers;
      if (blk >= T::kPBuffers) {
        timed_wait(&pempty_bar[buf], ((blk / T::kPBuffers) - 1) & 1, prof[2]);
      }
      const uint32_t sq_addr = smem_addr(smem + stage * T::kStageBytes);
      const uint32_t sk_addr = sq_addr + T::kTileBytes;
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) {
        const uint32_t off = (ks / 4) * kHalf + (ks % 4) * 32;
        wgmma_ss<Element, 64>(pacc, wgmma_desc(sq_addr + off, 16, 1024),
                              wgmma_desc(sk_addr + off, 16, 1024), ks > 0);
      }
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operand(pacc);
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty_bar[stage]);  // this warp's reads of Q and K are done
      mask_store_scores<Element, 64, 1>(sp_base + buf * kHalf, pacc, tab_intra, a, 0, off_p_row,
                                        p_xor);
      fence_proxy_async();  // P is read by wgmma (the async proxy)
      mbar_arrive(&pfull_bar[buf]);
      load_ahead();
    }
    if constexpr (kOutputsFirst) {
      if (corrects) {
        // The correction blocks' tiles, once both output warpgroups' O_loc stores are complete
        // (their first warps arrive on kOlocBarrier); nothing for this warpgroup to read in them.
        auto load_waiting = [&](int v) {
          if (v >= kStages) mbar_wait(&empty_bar[v % kStages], ((v / kStages) - 1) & 1);
          load_block(v);
        };
        if (warp == 0) asm volatile("bar.sync %0, 96;\n" ::"r"(kOlocBarrier) : "memory");
        if (tid == 0) {
          for (int v = output_end; v < output_end + kStages - 1 && v < total; ++v) {
            load_waiting(v);
          }
        }
        __syncwarp();
        for (int vi = output_end; vi < total; ++vi) {
          mbar_wait(&full_bar[vi % kStages], (vi / kStages) & 1);
          __syncwarp();
          if (lane == 0) mbar_arrive(&empty_bar[vi % kStages]);
          if (tid == 0 && vi + kStages - 1 < total) load_waiting(vi + kStages - 1);
          __syncwarp();
        }
      }
    }
    if constexpr (kProfile) {
      if (tid == 0) {
        prof[0] = clock64() - prof[0];
        for (int i = 0; i < 4; ++i) trace[8 * blockIdx.x + i] = prof[i];
      }
    }
    return;
  }

  // ---- the output warpgroups ----
  setmaxnreg_inc<T::kOutRegs>();
  const int slice = wg - 1;
  const int e0 = 64 * slice;
  const int row_e = 16 * warp + g;
  float st[kDim / 2];
  if constexpr (!kChained) {
    load_state_fragment<kDim>(st, state_source<kDim, kDim, FwdMode::kOutput>(p, where), e0 + row_e,
                              q);
  }
  const int off_vt = (mrow + 8 * (lane / 16)) * 128 + (((2 * warp + mat % 2) ^ mrow) << 4);
  const int off_o = (8 * (mat / 2) + mrow) * 128 + (((2 * warp + mat % 2) ^ mrow) << 4);
  unsigned char* so = so_base + slice * T::kOBytes;
  int nstore = 0;
  // Variant 4: named barrier kTurnBarrier + w completes when output warpgroup w may issue (its
  // 128 threads wait, the other's 128 arrive); slice 0 goes first.
  constexpr int kTurnBarrier = 4;
  constexpr int kChainBarrier = 6;  // kChained: the two output warpgroups around the hand-over
  if constexpr (kVariant == 4) {
    if (slice == 1 && num_blocks > 0) named_barrier_arrive(kTurnBarrier);
  }
  // V^T of this warpgroup's slice (the stage's V at sv), and weighted by w[u] = update_scale
  // lambda^(len - 1 - u) (0 past len) for the update; then the update S^T = lambda^len S^T +
  // (V^T diag(w)) K issued (K as an MN-major operand at sk_addr).
  auto load_weighted_vt = [&](uint32_t(&vt)[kBlockN / 16][4], uint32_t(&vw)[kBlockN / 16][4],
                              const unsigned char* sv, int len) {
    const float* w = tab_update + kBlockN + len - 1 - 2 * q;
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      ldsm_x4_trans(vt[ks], sv + off_vt + ks * 2048);
      weigh_fragment<Element, 1>(vw[ks], vt[ks], w, ks);
    }
  };
  auto issue_update = [&](const uint32_t(&vw)[kBlockN / 16][4], uint32_t sk_addr) {
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      wgmma_rs<Element, kDim, 1>(st, vw[ks], wgmma_desc(sk_addr + ks * 2048, kHalf, 1024), 1);
    }
    wgmma_commit();
  };
  // B. (kChained) The hand-over: in the sweep's order before the outputs, with kOutputsFirst after
  //    them. st holds S_loc on entry and S_in on return.
  auto hand_over = [&] {
    if constexpr (kChained) {
      // The state entering the piece, and the next piece's, through the chain. The slots hold a
      //    state in the output warpgroups' fragment order (16-byte vector i of output thread t at
      //    vector 256 i + t, so that a warp's accesses are 512 contiguous bytes); only this kernel
      //    reads them.
      if (trace != nullptr && tid == 128) trace[8 * claimed_id + 2] = global_timer();
      const std::int64_t chain = bb * p.h + hh;
      int* flag = chain_sync + 1 + chain;
      float* slots = p.workspace + chain * 2 * kDim * kDim;
      const float4* in =
          reinterpret_cast<const float4*>(slots + (seg % 2) * kDim * kDim) + (tid - 128);
      float4* next = reinterpret_cast<float4*>(slots + ((seg + 1) % 2) * kDim * kDim) + (tid - 128);
      const bool publish = seg + 1 < p.segments;
      const float piece_decay = expf(-p.s[hh] * static_cast<float>(n_end - n_begin));
      if (seg > 0) {
        if (tid == 128) {
          while (ld_acquire_gpu(flag) < seg) {
          }
        }
        __syncwarp();
        named_barrier_sync(kChainBarrier);
      }
      if (trace != nullptr && tid == 128) trace[8 * claimed_id + 3] = global_timer();
      // Every load issued before the first store: the two slots may alias as far as the compiler
      // knows, so loads and stores interleaved wait for each other, one L2 round trip a vector.
      float4 x[16];
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        x[i] = seg > 0 ? __ldcg(in + 256 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        if (publish) {
          next[256 * i] = make_float4(
              piece_decay * x[i].x + st[4 * i], piece_decay * x[i].y + st[4 * i + 1],
              piece_decay * x[i].z + st[4 * i + 2], piece_decay * x[i].w + st[4 * i + 3]);
        }
        st[4 * i] = x[i].x;
        st[4 * i + 1] = x[i].y;
        st[4 * i + 2] = x[i].z;
        st[4 * i + 3] = x[i].w;
      }
      if (publish) {
        __threadfence();
        named_barrier_sync(kChainBarrier);
        if (tid == 128) st_release_gpu(flag, static_cast<int>(seg) + 1);
      }
      if (trace != nullptr && tid == 128) trace[8 * claimed_id + 4] = global_timer();
    }
  };
  if constexpr (kChained) {
    // The piece's local state starts from zero (kOutputsFirst: so do its outputs).
#pragma unroll
    for (int i = 0; i < kDim / 2; ++i) st[i] = 0.f;
    if constexpr (kSweep == 1) {
      // A. The piece's local state in one sum over the piece, a block's products in flight
      //    while the next is issued; a stage is released once its products are complete.
      for (int vi = 0; vi < base; ++vi) {
        const int stage = vi % kStages;
        const uint32_t sk_addr = smem_addr(smem + stage * T::kStageBytes + T::kTileBytes);
        const uint32_t sv_addr = sk_addr + T::kTileBytes + slice * kHalf;
        mbar_wait(&full_bar[stage], (vi / kStages) & 1);
        mbar_wait(&wready_bar[stage], (vi / kStages) & 1);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < kBlockN / 16; ++ks) {
          wgmma_mn<Element, kDim>(st, wgmma_desc(sv_addr + ks * 2048, kHalf, 1024),
                                  wgmma_desc(sk_addr + ks * 2048, kHalf, 1024), 1);
        }
        wgmma_commit();
        wgmma_wait<1>();
        if (vi > 0) {
          __syncwarp();
          if (lane == 0) mbar_arrive(&empty_bar[(vi - 1) % kStages]);
        }
      }
      wgmma_wait<0>();
      wgmma_fence_operand(st);
      if (base > 0) {
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty_bar[(base - 1) % kStages]);
      }
      hand_over();
    } else if constexpr (kSweep == 2) {
      hand_over();  // S_loc = 0: no sweep
    } else if constexpr (!kOutputsFirst) {
      // A. The piece's local state: the update alone.
      for (int vi = 0; vi < base; ++vi) {
        const int stage = vi % kStages;
        unsigned char* sv = smem + stage * T::kStageBytes + 2 * T::kTileBytes + slice * kHalf;
        const uint32_t sk_addr = smem_addr(smem + stage * T::kStageBytes + T::kTileBytes);
        const int len = static_cast<int>(
            min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - vi * kBlockN));
        mbar_wait(&full_bar[stage], (vi / kStages) & 1);
        uint32_t vt[kBlockN / 16][4], vw[kBlockN / 16][4];
        load_weighted_vt(vt, vw, sv, len);
        const float block_decay = decay[len];
#pragma unroll
        for (int i = 0; i < kDim / 2; ++i) st[i] *= block_decay;
        issue_update(vw, sk_addr);
        wgmma_wait<0>();
        wgmma_fence_operand(st);
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty_bar[stage]);
      }
      hand_over();
    }
  }

  // C. The outputs.
  [[maybe_unused]] long long oprof[4] = {0, 0, 0, 0};  // kProfile: loop, full, pfull, store
  if constexpr (kProfile) oprof[0] = clock64();
  for (int blk = 0; blk < num_blocks; ++blk) {
    const int vi = base + blk;
    const int stage = vi % kStages;
    const int buf = blk % T::kPBuffers;
    unsigned char* sq = smem + stage * T::kStageBytes;
    const uint32_t sq_addr = smem_addr(sq);
    const uint32_t sk_addr = sq_addr + T::kTileBytes;
    unsigned char* sv = sq + 2 * T::kTileBytes + slice * kHalf;
    const int len =
        static_cast<int>(min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
    const int shift = (p.init_shift && seg == 0 && blk == 0) ? 1 : 0;
    timed_wait(&full_bar[stage], (vi / kStages) & 1, oprof[1]);

    // 1. O^T = S^T Q^T (the state before this block as the register A operand), 2. V^T diag(w)
    //    with w[u] = update_scale lambda^(len - 1 - u) (0 past len), 3. S^T <- lambda^len S^T +
    //    (V^T diag(w)) K (K as an MN-major operand), in the variant's order.
    float oacc[32];
    uint32_t sa[kKSteps][4];
    pack_state_operands<Element>(sa, st);
    const float block_decay = decay[len - shift];
    auto decay_state = [&] {
#pragma unroll
      for (int i = 0; i < kDim / 2; ++i) st[i] *= block_decay;
    };
    auto issue_inter = [&] { issue_inter_product<Element, kKSteps, kHalf>(oacc, sa, sq_addr); };
    uint32_t vt[kBlockN / 16][4], vw[kBlockN / 16][4];
    auto weigh_v = [&] { load_weighted_vt(vt, vw, sv, len); };
    auto update = [&] { issue_update(vw, sk_addr); };
    if constexpr (kVariant == 0) {
      // As the shipped pass: the decay between the two products (ptxas then waits for the first
      // before it, C7517).
      issue_inter();
      weigh_v();
      decay_state();
      update();
      wgmma_wait<1>();
    } else if constexpr (kVariant == 1 || kVariant == 3) {
      // The decay before either product is in flight.
      decay_state();
      issue_inter();
      weigh_v();
      update();
      wgmma_wait<1>();
    } else if constexpr (kVariant == 4) {
      // As 1, the two output warpgroups taking turns to issue their products.
      decay_state();
      weigh_v();
      named_barrier_sync(kTurnBarrier + slice);
      issue_inter();
      update();
      if (slice == 0 || blk + 1 < num_blocks) named_barrier_arrive(kTurnBarrier + 1 - slice);
      wgmma_wait<1>();
    } else {
      // The state's chain first: the update, then the inter product.
      decay_state();
      weigh_v();
      update();
      issue_inter();
      wgmma_wait<0>();
    }

    // 4. The inter part's columns scaled by inter_scale lambda^(t + 1 - shift).
    wgmma_fence_operand(oacc);
    scale_inter_columns<1>(oacc, tab_inter + 1 - shift + 2 * q);

    // 5. O^T += V^T P^T once this block's P is in its buffer.
    timed_wait(&pfull_bar[buf], (blk / T::kPBuffers) & 1, oprof[2]);
    {
      // V^T again from shared memory, or (variant 3) kept in registers since step 2.
      if constexpr (kVariant != 3) {
#pragma unroll
        for (int ks = 0; ks < kBlockN / 16; ++ks) ldsm_x4_trans(vt[ks], sv + off_vt + ks * 2048);
      }
      const uint32_t sp_addr = smem_addr(sp_base + buf * kHalf);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks) {
        wgmma_rs<Element, 64, 0>(oacc, vt[ks], wgmma_desc(sp_addr + ks * 32, 16, 1024), 1);
      }
      wgmma_commit();
      wgmma_wait<0>();
    }
    wgmma_fence_operand(oacc);
    wgmma_fence_operand(st);
    __syncwarp();
    if (lane == 0) {
      mbar_arrive(&empty_bar[stage]);  // this warp is done with the stage's tiles
      mbar_arrive(&pempty_bar[buf]);   // and with the P buffer
    }

    // 6. O^T staged as O (tokens, values) in a swizzled tile, stored by TMA.
    [[maybe_unused]] long long t_store = 0;
    if constexpr (kProfile) t_store = clock64();
    if (wg_tid == 0) bulk_wait_read<1>();  // the store before last has left this staging tile
    warpgroup_sync();
    if constexpr (kProfile) oprof[3] += clock64() - t_store;
    unsigned char* st_tile = so + (nstore & 1) * kHalf;
    stage_output_transposed<Element, 128>(st_tile + off_o, oacc);
    fence_proxy_async();
    warpgroup_sync();
    if (wg_tid == 0) {
      tma_store_4d(&p.tm_o, st_tile, e0, tile_row(blk), static_cast<int>(hh), static_cast<int>(bb));
      bulk_commit();
    }
    ++nstore;
  }

  if constexpr (kOutputsFirst) {
    if (corrects) {
      // O_loc must be in memory before the corrections' loads read it back: each output
      // warpgroup's storing thread waits for its stores, then its first warp tells the P
      // warpgroup's (which issues the loads).
      if (wg_tid == 0) bulk_wait<0>();
      __syncwarp();
      if (warp == 0) asm volatile("bar.arrive %0, 96;\n" ::"r"(kOlocBarrier) : "memory");
    }
    hand_over();  // st: S_loc in, S_in out
    if (corrects) {
      // C. o = O_loc + inter_scale lambda^(t + 1) q_t S_t, S_t the state before block blk.
      for (int blk = 0; blk < num_blocks; ++blk) {
        const int vi = output_end + blk;
        const int stage = vi % kStages;
        unsigned char* sq = smem + stage * T::kStageBytes;
        const unsigned char* so_loc = sq + T::kTileBytes + slice * kHalf;
        const int len = static_cast<int>(
            min(static_cast<std::int64_t>(kBlockN), n_end - n_begin - blk * kBlockN));
        mbar_wait(&full_bar[stage], (vi / kStages) & 1);
        float oacc[32];
        uint32_t sa[kKSteps][4];
        pack_state_operands<Element>(sa, st);
        issue_inter_product<Element, kKSteps, kHalf>(oacc, sa, smem_addr(sq));
        const float block_decay = decay[len];
#pragma unroll
        for (int i = 0; i < kDim / 2; ++i) st[i] *= block_decay;
        wgmma_wait<0>();
        wgmma_fence_operand(oacc);
        scale_inter_columns<1>(oacc, tab_inter + 1 + 2 * q);
        add_staged_output_transposed<Element, 128>(oacc, so_loc + off_o);
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty_bar[stage]);  // done with Q and O_loc
        if (wg_tid == 0) bulk_wait_read<1>();
        warpgroup_sync();
        unsigned char* st_tile = so + (nstore & 1) * kHalf;
        stage_output_transposed<Element, 128>(st_tile + off_o, oacc);
        fence_proxy_async();
        warpgroup_sync();
        if (wg_tid == 0) {
          tma_store_4d(&p.tm_o, st_tile, e0, tile_row(blk), static_cast<int>(hh),
                       static_cast<int>(bb));
          bulk_commit();
        }
        ++nstore;
      }
    }
  }
  if constexpr (kProfile) {
    if (tid == 128) {
      oprof[0] = clock64() - oprof[0];
      for (int i = 0; i < 4; ++i) trace[8 * blockIdx.x + 4 + i] = oprof[i];
    }
  }
  const StateView out = state_destination<kDim, kDim, FwdMode::kOutput>(p, where);
  if (out.ptr != nullptr) {
    store_state_fragment<kDim>(out, st, p.final_extra_decay ? decay[1] : 1.f, e0 + row_e, q);
  }
  if (wg_tid == 0) bulk_wait<0>();
  if constexpr (kChained) {
    if (trace != nullptr && tid == 128) trace[8 * claimed_id + 5] = global_timer();
  }
}

}  // namespace lightning::detail
