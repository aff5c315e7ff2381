// lightning: context parallelism, one sequence split over ranks (the LASP-2 scheme). Host-only,
// C++17, no NCCL headers: the exchange is an interface, lightning/nccl.h implements it with NCCL.
//
// Ranks 0..world-1 hold consecutive shards of one sequence: every shard has shard_len tokens but
// the last, which may be shorter (1..shard_len). Only float32 states cross ranks, never keys or
// values:
//   forward   1. each rank computes the state at the end of its shard, from the sequence's
//                initial state on rank 0 and from zero elsewhere (its contribution);
//             2. the ranks all-gather the contributions;
//             3. rank r combines the decayed contributions of ranks 0..r-1 into its incoming
//                state P_r = sum_{j<r} lambda^((r-1-j) shard_len) C_j, then runs the forward
//                from P_r.
//   backward  the same exchange, once, carrying two states per rank: the forward contribution
//             (for P_r) and the state-gradient contribution (the gradient of the state entering
//             the shard when only this shard's dO counts; on the last rank dS_final counts too);
//             rank r combines ranks r+1..world-1's into the gradient of the state at the end of
//             its shard, then runs the backward from P_r and that gradient.
//
// Per rank the params describe the shard alone ([B, H, n, D] with n its length). Their optional
// states mean: forward initial_state, the sequence's initial state, on rank 0 only; final_state,
// the state at the end of this shard (the sequence's final state on the last rank). Backward
// initial_state as the forward's; dfinal_state, the gradient of the sequence's final state, on
// the last rank only; dinitial_state, the gradient of the state entering this shard (the
// sequence's initial-state gradient on rank 0). Anything else is rejected with InvalidArgument.
//
// Cost: phase 1 computes states only (K and V, or Q and dO, read once; no outputs) when the
// rank's o (forward) or dv (backward) is a dense tensor whose memory holds two [B, H, D, E] float
// states, using that memory as scratch; otherwise it runs the full forward (and the backward's
// dV pass), writing o (dv) as scratch. kernels/README.md has the details.
#pragma once

#include <cstddef>
#include <cstdint>

#include <lightning/api.h>

namespace lightning::cp {

struct Shard {
  int rank = 0;
  int world = 1;
  std::int64_t shard_len = 0;  // tokens of every shard but the last
};

// The one collective the scheme needs: every rank sends `count` floats and receives every rank's,
// rank-major (recv[r * count + i] = rank r's send[i]), ordered on `stream`.
class StateExchange {
 public:
  virtual ~StateExchange() = default;
  virtual void all_gather(const float* send, float* recv, std::size_t count, Stream stream) = 0;
};

// Throw InvalidArgument for a bad shard or a state given on the wrong rank (and everything the
// single-GPU validate() rejects). Touch no device memory; return the shard's sizes.
Shape validate(const lightning_fwd_params_t& params, const Shard& shard);
Shape validate(const lightning_bwd_params_t& params, const Shard& shard);

// Floats in one state [B, H, D, E] of these params.
std::int64_t state_count(const Shape& shape);
// Device bytes of the exchange buffer: (world + 2) states forward, 2 (world + 2) backward. The
// kernels' own workspace is params.workspace, sized as for the single-GPU calls.
std::size_t forward_exchange_bytes(const lightning_fwd_params_t& params, const Shard& shard);
std::size_t backward_exchange_bytes(const lightning_bwd_params_t& params, const Shard& shard);

// The whole pass on one rank, the all-gather through `exchange`; the exchange buffer is device
// memory of *_exchange_bytes, 256-byte aligned. Every rank must call it (it is collective).
void forward(const lightning_fwd_params_t& params,
             const Shard& shard,
             StateExchange& exchange,
             void* exchange_buffer,
             std::size_t exchange_bytes,
             Stream stream = nullptr);
void backward(const lightning_bwd_params_t& params,
              const Shard& shard,
              StateExchange& exchange,
              void* exchange_buffer,
              std::size_t exchange_bytes,
              Stream stream = nullptr);

// The phases, for callers that move the states themselves (the single-GPU check runs every rank's
// phase 1, gathers by copies, then every rank's phase 2). States are contiguous [B, H, D, E].
//   forward:  contribution: 1 state (writes params.o as scratch); gathered: world states;
//             incoming: 1 state of scratch.
//   backward: contribution: 2 states (writes params.dv as scratch); gathered: world x 2 states;
//             incoming: 2 states of scratch.
void forward_contribution(const lightning_fwd_params_t& params,
                          const Shard& shard,
                          float* contribution,
                          Stream stream = nullptr);
void forward_from_gathered(const lightning_fwd_params_t& params,
                           const Shard& shard,
                           const float* gathered,
                           float* incoming,
                           Stream stream = nullptr);
void backward_contribution(const lightning_bwd_params_t& params,
                           const Shard& shard,
                           float* contribution,
                           Stream stream = nullptr);
void backward_from_gathered(const lightning_bwd_params_t& params,
                            const Shard& shard,
                            const float* gathered,
                            float* incoming,
                            Stream stream = nullptr);

}  // namespace lightning::cp
