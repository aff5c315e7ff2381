// lightning-bench: the work model of a point, so times become GB/s and TFLOP/s (DESIGN.md
// section 4).
//
// Bytes: the minimum traffic of the pass, whatever the provider does internally:
//   fwd     q, k, v read, o written                  (2D + 2E) elements per token per head
//   bwd     q, k, v, dO read; dQ, dK, dV written     (4D + 3E)
//   fwdbwd  the sum                                  (6D + 5E)
// times the storage dtype's size. bf16, D = E = 128: 1,024 / 1,792 / 2,816 bytes per token and
// head.
//
// FLOPs (a multiply-add is 2), per token per head, by what the provider computes:
//   linear-blocked (lightning, cpu-lightning), block size Bk = 64:
//     fwd  2 Bk (D + E)   intra: Q K^T and (masked) V over one block (full blocks counted)
//          + 4 D E        inter: q S, and the state update K^T V
//     bwd  2 Bk (3D + 2E) intra: dO V^T, dQ, Q K^T, dV and dK from the block's masked products
//          + 10 D E       inter: dO S^T, the recomputed state update, dS update, V dS^T, K dS
//     D = E = 128: fwd 98,304 (DESIGN.md's 4 Bk D + 4 D^2), bwd 245,760.
//   linear-recurrent (recurrent, cumsum-linear): fwd 4 D E (update k^T v, read out q S); bwd 10 D
//   E. softmax (softmax-naive, cpu-softmax), causal: a token attends (N + 1) / 2 keys on average;
//     fwd 2 (N + 1) / 2 (D + E) (Q K^T and P V); bwd 2.5x fwd (FlashAttention's convention).
// TFLOP/s therefore compares providers only within a family; tokens/s compares all of them.
#pragma once

#include <cstdint>

#include "options.h"

namespace lightning::bench {

// The block size the linear-blocked FLOP model counts (the kernels' block of DESIGN.md section 4).
inline constexpr int kModelBlock = 64;

struct Work {
  double tokens = 0;  // B * N
  double bytes = 0;   // model bytes moved by the pass
  double flops = 0;   // model FLOPs of the pass
};

double bytes_per_token_head(Mode mode, std::int64_t d, std::int64_t e, std::size_t elem_bytes);
double flops_per_token_head(
    Family family, Mode mode, std::int64_t n, std::int64_t d, std::int64_t e);

Work model_work(Family family,
                Mode mode,
                std::int64_t b,
                std::int64_t h,
                std::int64_t n,
                std::int64_t d,
                std::int64_t e,
                std::size_t elem_bytes);

// One line naming the FLOP model of a family, for the report.
const char* flops_model_name(Family family);

}  // namespace lightning::bench
