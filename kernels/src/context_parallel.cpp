// Context parallelism (lightning/context_parallel.h): validation, the two phases of each pass on
// the single-GPU kernels, and the collective driver around one all-gather.
#include <algorithm>
#include <cstdint>
#include <string>

#include <lightning/context_parallel.h>

#include "launch.h"

namespace lightning::cp {

namespace {

[[noreturn]] void fail(lightning_status_t status, const std::string& what) {
  throw InvalidArgument(status, "lightning::cp: " + what);
}

bool present(const Tensor& t) {
  return t.data != nullptr;
}

void check_shard(const Shard& shard, std::int64_t n) {
  if (shard.world < 1) fail(LIGHTNING_ERROR_INVALID_VALUE, "world must be >= 1");
  if (shard.rank < 0 || shard.rank >= shard.world) {
    fail(LIGHTNING_ERROR_INVALID_VALUE, "rank " + std::to_string(shard.rank) + " is outside 0.." +
                                            std::to_string(shard.world - 1));
  }
  if (shard.shard_len < 1) fail(LIGHTNING_ERROR_INVALID_VALUE, "shard_len must be >= 1");
  const bool last = shard.rank == shard.world - 1;
  if (!last && n != shard.shard_len) {
    fail(LIGHTNING_ERROR_SHAPE_MISMATCH,
         "rank " + std::to_string(shard.rank) + " holds " + std::to_string(n) +
             " tokens; every shard but the last must hold shard_len = " +
             std::to_string(shard.shard_len));
  }
  if (last && n > shard.shard_len) {
    fail(LIGHTNING_ERROR_SHAPE_MISMATCH,
         "the last rank holds " + std::to_string(n) +
             " tokens, more than shard_len = " + std::to_string(shard.shard_len));
  }
}

void check_initial_state_on_rank0(const Tensor& initial_state, const Shard& shard) {
  if (present(initial_state) && shard.rank != 0) {
    fail(LIGHTNING_ERROR_INVALID_VALUE,
         "initial_state is the sequence's initial state: give it on rank 0 only (rank " +
             std::to_string(shard.rank) + " has one)");
  }
}

void check_buffer(const void* buffer, std::size_t have, std::size_t need) {
  if (buffer == nullptr) fail(LIGHTNING_ERROR_WORKSPACE, "the exchange buffer is null");
  if (have < need) {
    fail(LIGHTNING_ERROR_WORKSPACE, "the exchange buffer has " + std::to_string(have) + " bytes, " +
                                        std::to_string(need) + " are required");
  }
  if (reinterpret_cast<std::uintptr_t>(buffer) % 256 != 0) {
    fail(LIGHTNING_ERROR_MISALIGNED, "the exchange buffer must be 256-byte aligned");
  }
}

Tensor state_view(const float* data, const Shape& shape) {
  return make_state(const_cast<float*>(data), shape.b, shape.h, shape.d, shape.e);
}

// The bytes of t's memory when its elements fill one block with no gaps (the axes in any order),
// else 0: only then may phase 1 use that memory as scratch beyond the elements themselves.
std::size_t dense_bytes(const Tensor& t) {
  std::int64_t order[4] = {0, 1, 2, 3};
  std::sort(order, order + t.rank,
            [&](std::int64_t a, std::int64_t b) { return t.stride[a] < t.stride[b]; });
  std::int64_t expected = 1;
  for (int i = 0; i < t.rank; ++i) {
    const std::int64_t axis = order[i];
    if (t.shape[axis] == 1) continue;
    if (t.stride[axis] != expected) return 0;
    expected *= t.shape[axis];
  }
  return static_cast<std::size_t>(expected) * dtype_size(t.dtype);
}

template <class Params>
void check_slopes(const Params& params, const Shape& shape, Stream stream) {
  if (!(params.flags & LIGHTNING_FLAG_SKIP_SLOPE_CHECK)) {
    validate_slopes(detail::copy_slopes_to_host(params.s, shape.h, stream).data(), shape.h);
  }
}

// The forward params of the backward's phase 1: the shard's forward into dv (same shape and
// dtype as o), the backward's workspace (it covers the forward's plan).
lightning_fwd_params_t forward_of(const lightning_bwd_params_t& p) {
  ForwardParams f;
  f.q = p.q;
  f.k = p.k;
  f.v = p.v;
  f.o = p.dv;
  f.s = p.s;
  f.scale = p.scale;
  f.initial_state = p.initial_state;
  f.workspace = p.workspace;
  f.workspace_bytes = p.workspace_bytes;
  f.flags = p.flags;
  return f;
}

}  // namespace

Shape validate(const lightning_fwd_params_t& params, const Shard& shard) {
  const Shape shape = lightning::validate(params);
  check_shard(shard, shape.n);
  check_initial_state_on_rank0(params.initial_state, shard);
  return shape;
}

Shape validate(const lightning_bwd_params_t& params, const Shard& shard) {
  const Shape shape = lightning::validate(params);
  check_shard(shard, shape.n);
  check_initial_state_on_rank0(params.initial_state, shard);
  if (present(params.dfinal_state) && shard.rank != shard.world - 1) {
    fail(LIGHTNING_ERROR_INVALID_VALUE,
         "dfinal_state is the gradient of the sequence's final state: give it on the last rank "
         "only (rank " +
             std::to_string(shard.rank) + " of " + std::to_string(shard.world) + " has one)");
  }
  return shape;
}

std::int64_t state_count(const Shape& shape) {
  return shape.b * shape.h * shape.d * shape.e;
}

std::size_t forward_exchange_bytes(const lightning_fwd_params_t& params, const Shard& shard) {
  const Shape shape = validate(params, shard);
  return static_cast<std::size_t>(shard.world + 2) * state_count(shape) * sizeof(float);
}

std::size_t backward_exchange_bytes(const lightning_bwd_params_t& params, const Shard& shard) {
  const Shape shape = validate(params, shard);
  return static_cast<std::size_t>(2 * (shard.world + 2)) * state_count(shape) * sizeof(float);
}

void forward_contribution(const lightning_fwd_params_t& params,
                          const Shard& shard,
                          float* contribution,
                          Stream stream) {
  const Shape shape = validate(params, shard);
  ForwardParams f;
  static_cast<lightning_fwd_params_t&>(f) = params;
  f.final_state = state_view(contribution, shape);
  // The state alone (K and V read once, no outputs) where o's memory, scratch in this phase, holds
  // the pieces' states; else the whole forward.
  check_slopes(params, shape, stream);
  if (!detail::launch_forward_state(f, shape, f.o.data, dense_bytes(f.o), stream)) {
    f.flags |= LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
    lightning::forward(f, stream);
  }
}

void forward_from_gathered(const lightning_fwd_params_t& params,
                           const Shard& shard,
                           const float* gathered,
                           float* incoming,
                           Stream stream) {
  const Shape shape = validate(params, shard);
  ForwardParams f;
  static_cast<lightning_fwd_params_t&>(f) = params;
  if (shard.rank > 0) {  // rank 0 starts from the sequence's initial state, as given
    detail::launch_cp_combine(params.s, shape, gathered, state_count(shape), 0, shard.rank,
                              shard.world, shard.shard_len, incoming, nullptr, stream);
    f.initial_state = state_view(incoming, shape);
  }
  lightning::forward(f, stream);
}

void backward_contribution(const lightning_bwd_params_t& params,
                           const Shard& shard,
                           float* contribution,
                           Stream stream) {
  const Shape shape = validate(params, shard);
  const std::int64_t count = state_count(shape);
  // The forward contribution (params.dv is scratch), then the state-gradient contribution: the
  // dV pass's final state alone, from dS_final on the last rank and from zero elsewhere. Each is
  // a state-only pass where dv's memory holds its pieces' states, else the whole pass.
  check_slopes(params, shape, stream);
  ForwardParams f;
  static_cast<lightning_fwd_params_t&>(f) = forward_of(params);
  f.final_state = state_view(contribution, shape);
  f.flags |= LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
  const std::size_t scratch = dense_bytes(params.dv);
  if (!detail::launch_forward_state(f, shape, params.dv.data, scratch, stream)) {
    lightning::forward(f, stream);
  }

  BackwardParams g;
  static_cast<lightning_bwd_params_t&>(g) = params;
  g.dinitial_state = state_view(contribution + count, shape);
  if (!detail::launch_state_gradient_state_only(g, shape, params.dv.data, scratch, stream)) {
    detail::launch_state_gradient(g, shape, stream);
  }
}

void backward_from_gathered(const lightning_bwd_params_t& params,
                            const Shard& shard,
                            const float* gathered,
                            float* incoming,
                            Stream stream) {
  const Shape shape = validate(params, shard);
  const std::int64_t count = state_count(shape);
  const bool first = shard.rank == 0, last = shard.rank == shard.world - 1;
  BackwardParams g;
  static_cast<lightning_bwd_params_t&>(g) = params;
  if (!first || !last) {
    detail::launch_cp_combine(params.s, shape, gathered, 2 * count, count, shard.rank, shard.world,
                              shard.shard_len, first ? nullptr : incoming,
                              last ? nullptr : incoming + count, stream);
  }
  if (!first) g.initial_state = state_view(incoming, shape);
  if (!last) g.dfinal_state = state_view(incoming + count, shape);
  lightning::backward(g, stream);
}

namespace {

// Check s once (the phases then skip it: each would copy s to the host and synchronize).
template <class Params>
Params with_slopes_checked(const Params& params, const Shape& shape, Stream stream) {
  Params p = params;
  if (!(p.flags & LIGHTNING_FLAG_SKIP_SLOPE_CHECK)) {
    validate_slopes(detail::copy_slopes_to_host(params.s, shape.h, stream).data(), shape.h);
    p.flags |= LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
  }
  return p;
}

}  // namespace

void forward(const lightning_fwd_params_t& params,
             const Shard& shard,
             StateExchange& exchange,
             void* exchange_buffer,
             std::size_t exchange_bytes,
             Stream stream) {
  const Shape shape = validate(params, shard);
  check_buffer(exchange_buffer, exchange_bytes, forward_exchange_bytes(params, shard));
  const lightning_fwd_params_t p = with_slopes_checked(params, shape, stream);
  const std::int64_t count = state_count(shape);
  float* send = static_cast<float*>(exchange_buffer);
  float* recv = send + count;
  float* incoming = recv + shard.world * count;
  forward_contribution(p, shard, send, stream);
  exchange.all_gather(send, recv, static_cast<std::size_t>(count), stream);
  forward_from_gathered(p, shard, recv, incoming, stream);
}

void backward(const lightning_bwd_params_t& params,
              const Shard& shard,
              StateExchange& exchange,
              void* exchange_buffer,
              std::size_t exchange_bytes,
              Stream stream) {
  const Shape shape = validate(params, shard);
  check_buffer(exchange_buffer, exchange_bytes, backward_exchange_bytes(params, shard));
  const lightning_bwd_params_t p = with_slopes_checked(params, shape, stream);
  const std::int64_t count = state_count(shape);
  float* send = static_cast<float*>(exchange_buffer);
  float* recv = send + 2 * count;
  float* incoming = recv + 2 * shard.world * count;
  backward_contribution(p, shard, send, stream);
  exchange.all_gather(send, recv, static_cast<std::size_t>(2 * count), stream);
  backward_from_gathered(p, shard, recv, incoming, stream);
}

}  // namespace lightning::cp
