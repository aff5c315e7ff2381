// CPU references for lightning attention, templated on the scalar: float64 is the ground truth of
// DESIGN.md section 5; float with a storage-dtype `round` is the "baseline" of rule 1.
//
// Per batch b and head h (DESIGN.md section 1), lambda = exp(-s_h):
//   S_{-1} = S0 (zero when absent),  S_t = lambda S_{t-1} + k_t^T v_t,  o_t = scale q_t S_t,
//   final state S_{N-1}.
// Three forms of the same map, each with its own backward:
//   recurrent_*  the token recurrence (the "cumsum" form), O(N D E);
//   quadratic_*  O = scale [(Q K^T) (.) M] V + scale diag(lambda^(t+1)) Q S0,
//                M[t][u] = lambda^(t-u) for t >= u, else 0; O(N^2): small N only;
//   blocked_*    the intra/inter split the GPU kernels run, O(N (B + D) E) for block size B.
// And causal softmax attention (softmax_*), the quadratic-cost comparison point.
//
// Layouts are contiguous row-major: q, k [B, H, N, D]; v, o, dout [B, H, N, E];
// states [B, H, D, E]; s [H]. Work is spread over the (b, h) pairs with std::thread.
//
// The definitions live in reference_cpu.cpp and are instantiated there for float and double only,
// so this header needs neither Eigen nor C++20 (GPU tests include it too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace lightning::ref {

template <class Scalar>
struct Problem {
  std::int64_t b = 1, h = 1, n = 1, d = 64, e = 64;
  std::vector<Scalar> q, k;  // contiguous [B, H, N, D]
  std::vector<Scalar> v;     // contiguous [B, H, N, E]
  std::vector<Scalar> s;     // [H], s >= 0
  Scalar scale = 1;
  std::vector<Scalar> initial_state;  // empty (zero state) or contiguous [B, H, D, E]
};

template <class Scalar>
struct Forward {
  std::vector<Scalar> o;            // [B, H, N, E]
  std::vector<Scalar> final_state;  // [B, H, D, E] (empty for softmax)
};

template <class Scalar>
struct Gradients {
  std::vector<Scalar> dq, dk;          // [B, H, N, D]
  std::vector<Scalar> dv;              // [B, H, N, E]
  std::vector<Scalar> dinitial_state;  // [B, H, D, E], always computed (empty for softmax)
};

// Elementwise storage rounding of intermediates; empty means exact (no rounding).
template <class Scalar>
using RoundFn = std::function<Scalar(Scalar)>;

// All functions throw std::invalid_argument when the sizes of the vectors do not match the shape,
// a dimension is < 1, s has a negative or NaN entry, or block < 1.
// dout: [B, H, N, E]; dfinal_state: empty (no gradient at the final state) or [B, H, D, E].

template <class Scalar>
Forward<Scalar> recurrent_forward(const Problem<Scalar>& p);
template <class Scalar>
Gradients<Scalar> recurrent_backward(const Problem<Scalar>& p,
                                     const std::vector<Scalar>& dout,
                                     const std::vector<Scalar>& dfinal_state);

template <class Scalar>
Forward<Scalar> quadratic_forward(const Problem<Scalar>& p);
template <class Scalar>
Gradients<Scalar> quadratic_backward(const Problem<Scalar>& p,
                                     const std::vector<Scalar>& dout,
                                     const std::vector<Scalar>& dfinal_state);

// The blocked lightning algorithm; block i covers rows [i*block, min((i+1)*block, N)), length L:
//   intra:  O_i  = [scale (Q_i K_i^T) (.) M_L] V_i,        M_L[r][c] = lambda^(r-c), r >= c
//   inter:  O_i += scale diag(lambda^(r+1)) Q_i S           (S: the state before block i)
//   update: S    = lambda^L S + (diag(lambda^(L-1-r)) K_i)^T V_i
// Backward, two sweeps, as the GPU kernels run it:
//   forward sweep (S as above):
//     dQ_i = [scale (dO_i V_i^T) (.) M_L] K_i + scale diag(lambda^(r+1)) dO_i S^T
//   reverse sweep, G = the gradient arriving at the end of block i (dS_final for the last block):
//     dK_i = [scale (dO_i V_i^T) (.) M_L]^T Q_i + diag(lambda^(L-1-r)) V_i G^T
//     dV_i = [scale (Q_i K_i^T) (.) M_L]^T dO_i + diag(lambda^(L-1-r)) K_i G
//     G    = lambda^L G + scale (diag(lambda^(r+1)) Q_i)^T dO_i
//   dS0 = G after block 0.
// Every decay is exp(-s * delta) with delta >= 0: nothing is ever divided by a decay.
//
// Storage rounding (the "baseline" of DESIGN.md rule 1, e.g. Scalar = float with `round` to bf16):
// rounding the inputs is the caller's job; when `round` is set it is applied to
//   forward:  the masked scaled scores scale (Q_i K_i^T) (.) M_L, a copy of the state S used in
//             the Q_i S product (S itself stays in Scalar), and each block's output O_i;
//   backward: the masked scaled scores (for dV) and scale (dO_i V_i^T) (.) M_L (for dQ, dK), copies
//             of S (in dO_i S^T) and of G (in V_i G^T, K_i G), and each block's dQ_i, dK_i, dV_i.
// So o, dq, dk, dv come back rounded to the storage dtype. The states (final_state, dinitial_state)
// are float32 in the kernels' API, so they are returned in Scalar precision, unrounded.
template <class Scalar>
Forward<Scalar> blocked_forward(const Problem<Scalar>& p,
                                int block,
                                const RoundFn<Scalar>& round = {});
template <class Scalar>
Gradients<Scalar> blocked_backward(const Problem<Scalar>& p,
                                   const std::vector<Scalar>& dout,
                                   const std::vector<Scalar>& dfinal_state,
                                   int block,
                                   const RoundFn<Scalar>& round = {});

// Causal softmax attention: o = softmax(scale Q K^T + causal mask) V. Ignores s and the states
// (final_state and dinitial_state come back empty).
template <class Scalar>
Forward<Scalar> softmax_forward(const Problem<Scalar>& p);
template <class Scalar>
Gradients<Scalar> softmax_backward(const Problem<Scalar>& p, const std::vector<Scalar>& dout);

// A random problem: q, k, v (and the initial state when asked) uniform in [-1, 1) from a
// mt19937_64 seeded with `seed` (same values on every platform); scale = 1/sqrt(d).
template <class Scalar>
Problem<Scalar> random_problem(std::int64_t b,
                               std::int64_t h,
                               std::int64_t n,
                               std::int64_t d,
                               std::int64_t e,
                               std::vector<Scalar> s,
                               bool with_initial_state,
                               std::uint64_t seed);

// `count` values uniform in [-1, 1) (as doubles; converting to float may round the top to 1), from
// the same generator as random_problem.
template <class Scalar>
std::vector<Scalar> random_uniform(std::size_t count, std::uint64_t seed);

// The official ALiBi slopes s_h = 2^(-8 (h + 1) / H), h = 0..H-1 (the same formula for any H).
std::vector<double> alibi_slopes(std::int64_t h);

// Rows [begin, end) of every (b, h) sequence of an activation [B, H, N, X] (X = D or E).
template <class Scalar>
std::vector<Scalar> slice_rows(const std::vector<Scalar>& x,
                               std::int64_t bh,
                               std::int64_t n,
                               std::int64_t width,
                               std::int64_t begin,
                               std::int64_t end) {
  std::vector<Scalar> out;
  out.reserve(static_cast<std::size_t>(bh * (end - begin) * width));
  for (std::int64_t i = 0; i < bh; ++i) {
    const auto first = x.begin() + (i * n + begin) * width;
    out.insert(out.end(), first, first + (end - begin) * width);
  }
  return out;
}

// The sub-problem of tokens [begin, end) with the given initial state (empty: zero).
template <class Scalar>
Problem<Scalar> slice_problem(const Problem<Scalar>& p,
                              std::int64_t begin,
                              std::int64_t end,
                              std::vector<Scalar> initial_state) {
  Problem<Scalar> out;
  out.b = p.b;
  out.h = p.h;
  out.n = end - begin;
  out.d = p.d;
  out.e = p.e;
  out.q = slice_rows(p.q, p.b * p.h, p.n, p.d, begin, end);
  out.k = slice_rows(p.k, p.b * p.h, p.n, p.d, begin, end);
  out.v = slice_rows(p.v, p.b * p.h, p.n, p.e, begin, end);
  out.s = p.s;
  out.scale = p.scale;
  out.initial_state = std::move(initial_state);
  return out;
}

// Elementwise conversion, with an optional rounding applied after it (e.g. inputs to bf16).
template <class To, class From>
std::vector<To> convert(const std::vector<From>& x, const RoundFn<To>& round = {}) {
  std::vector<To> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    out[i] = round ? round(static_cast<To>(x[i])) : static_cast<To>(x[i]);
  }
  return out;
}

// The same problem in another scalar; `round` applies to q, k, v only (s, scale and the initial
// state are float32 in the kernels' API).
template <class To, class From>
Problem<To> convert_problem(const Problem<From>& p, const RoundFn<To>& round = {}) {
  Problem<To> out;
  out.b = p.b;
  out.h = p.h;
  out.n = p.n;
  out.d = p.d;
  out.e = p.e;
  out.q = convert<To>(p.q, round);
  out.k = convert<To>(p.k, round);
  out.v = convert<To>(p.v, round);
  out.s = convert<To>(p.s);
  out.scale = static_cast<To>(p.scale);
  out.initial_state = convert<To>(p.initial_state);
  return out;
}

#define LIGHTNING_REF_CPU_DECLARE(Scalar, EXTERN)                                                 \
  EXTERN template Forward<Scalar> recurrent_forward(const Problem<Scalar>&);                      \
  EXTERN template Gradients<Scalar> recurrent_backward(                                           \
      const Problem<Scalar>&, const std::vector<Scalar>&, const std::vector<Scalar>&);            \
  EXTERN template Forward<Scalar> quadratic_forward(const Problem<Scalar>&);                      \
  EXTERN template Gradients<Scalar> quadratic_backward(                                           \
      const Problem<Scalar>&, const std::vector<Scalar>&, const std::vector<Scalar>&);            \
  EXTERN template Forward<Scalar> blocked_forward(const Problem<Scalar>&, int,                    \
                                                  const RoundFn<Scalar>&);                        \
  EXTERN template Gradients<Scalar> blocked_backward(                                             \
      const Problem<Scalar>&, const std::vector<Scalar>&, const std::vector<Scalar>&, int,        \
      const RoundFn<Scalar>&);                                                                    \
  EXTERN template Forward<Scalar> softmax_forward(const Problem<Scalar>&);                        \
  EXTERN template Gradients<Scalar> softmax_backward(const Problem<Scalar>&,                      \
                                                     const std::vector<Scalar>&);                 \
  EXTERN template Problem<Scalar> random_problem(std::int64_t, std::int64_t, std::int64_t,        \
                                                 std::int64_t, std::int64_t, std::vector<Scalar>, \
                                                 bool, std::uint64_t);                            \
  EXTERN template std::vector<Scalar> random_uniform(std::size_t, std::uint64_t);

// Instantiated in reference_cpu.cpp for these two scalars only.
LIGHTNING_REF_CPU_DECLARE(double, extern)
LIGHTNING_REF_CPU_DECLARE(float, extern)

}  // namespace lightning::ref
