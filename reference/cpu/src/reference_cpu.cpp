// The CPU references of cpu.h: Eigen on row-major maps of each (b, h) slice, one slice per task of
// parallel_for. The math and the rounding semantics are documented in the header.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include <Eigen/Core>

#include <lightning/reference/cpu.h>
#include <lightning/reference/parallel.h>

namespace lightning::ref {
namespace {

template <class Scalar>
using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
template <class Scalar>
using ConstMap = Eigen::Map<const Mat<Scalar>>;
template <class Scalar>
using MutMap = Eigen::Map<Mat<Scalar>>;

// ---------------------------------------------------------------------------------------------
// Checks

template <class Scalar>
void check_size(const char* what,
                const std::vector<Scalar>& x,
                std::int64_t want,
                bool may_be_empty) {
  if (may_be_empty && x.empty()) return;
  if (static_cast<std::int64_t>(x.size()) != want) {
    throw std::invalid_argument(std::string("lightning::ref: ") + what + " has " +
                                std::to_string(x.size()) + " elements, expected " +
                                std::to_string(want) + (may_be_empty ? " (or none)" : ""));
  }
}

template <class Scalar>
void check_problem(const Problem<Scalar>& p) {
  if (p.b < 1 || p.h < 1 || p.n < 1 || p.d < 1 || p.e < 1) {
    throw std::invalid_argument("lightning::ref: every dimension must be >= 1 (b " +
                                std::to_string(p.b) + ", h " + std::to_string(p.h) + ", n " +
                                std::to_string(p.n) + ", d " + std::to_string(p.d) + ", e " +
                                std::to_string(p.e) + ")");
  }
  const std::int64_t bh = p.b * p.h;
  check_size("q", p.q, bh * p.n * p.d, false);
  check_size("k", p.k, bh * p.n * p.d, false);
  check_size("v", p.v, bh * p.n * p.e, false);
  check_size("s", p.s, p.h, false);
  check_size("initial_state", p.initial_state, bh * p.d * p.e, true);
  for (std::size_t i = 0; i < p.s.size(); ++i) {
    if (!(p.s[i] >= 0)) {  // also rejects NaN
      throw std::invalid_argument("lightning::ref: s[" + std::to_string(i) +
                                  "] must be >= 0 and not NaN, got " + std::to_string(p.s[i]));
    }
  }
}

template <class Scalar>
void check_gradients_in(const Problem<Scalar>& p,
                        const std::vector<Scalar>& dout,
                        const std::vector<Scalar>& dfinal_state) {
  check_size("dout", dout, p.b * p.h * p.n * p.e, false);
  check_size("dfinal_state", dfinal_state, p.b * p.h * p.d * p.e, true);
}

void check_block(int block) {
  if (block < 1) {
    throw std::invalid_argument("lightning::ref: block must be >= 1, got " + std::to_string(block));
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

// One (b, h) slice of a problem: index i = b * H + h.
template <class Scalar>
struct Slice {
  ConstMap<Scalar> q, k, v;  // (n, d), (n, d), (n, e)
  const Scalar* s0;          // (d, e) or nullptr
  Scalar s;
};

template <class Scalar>
Slice<Scalar> slice(const Problem<Scalar>& p, std::int64_t i) {
  return Slice<Scalar>{ConstMap<Scalar>(p.q.data() + i * p.n * p.d, p.n, p.d),
                       ConstMap<Scalar>(p.k.data() + i * p.n * p.d, p.n, p.d),
                       ConstMap<Scalar>(p.v.data() + i * p.n * p.e, p.n, p.e),
                       p.initial_state.empty() ? nullptr : p.initial_state.data() + i * p.d * p.e,
                       p.s[static_cast<std::size_t>(i % p.h)]};
}

// exp(-s * delta), delta >= 0: the only form a decay is ever computed in.
template <class Scalar>
Scalar decay(Scalar s, std::int64_t delta) {
  return std::exp(-s * static_cast<Scalar>(delta));
}

// (len, len): M[r][c] = lambda^(r-c) for r >= c, else 0. Depends only on r - c, so the top-left
// L x L corner of it is the mask of a partial block of length L.
template <class Scalar>
Mat<Scalar> decay_mask(Scalar s, std::int64_t len) {
  Vec<Scalar> pow(len);
  for (std::int64_t i = 0; i < len; ++i) pow(i) = decay(s, i);
  Mat<Scalar> m = Mat<Scalar>::Zero(len, len);
  for (std::int64_t r = 0; r < len; ++r) {
    for (std::int64_t c = 0; c <= r; ++c) m(r, c) = pow(r - c);
  }
  return m;
}

// (len): lambda^(r+1), the decay from the state before a block to row r of it.
template <class Scalar>
Vec<Scalar> q_decay(Scalar s, std::int64_t len) {
  Vec<Scalar> out(len);
  for (std::int64_t r = 0; r < len; ++r) out(r) = decay(s, r + 1);
  return out;
}

// (len): lambda^(len-1-r), the decay from row r of a block of length len to its end.
template <class Scalar>
Vec<Scalar> k_decay(Scalar s, std::int64_t len) {
  Vec<Scalar> out(len);
  for (std::int64_t r = 0; r < len; ++r) out(r) = decay(s, len - 1 - r);
  return out;
}

template <class Scalar>
Mat<Scalar> state_or_zero(const Scalar* state, std::int64_t d, std::int64_t e) {
  if (state == nullptr) return Mat<Scalar>::Zero(d, e);
  return ConstMap<Scalar>(state, d, e);
}

template <class Scalar>
void round_in_place(Mat<Scalar>& m, const RoundFn<Scalar>& round) {
  if (round) m = m.unaryExpr(round);
}

template <class Scalar>
Mat<Scalar> rounded(const Mat<Scalar>& m, const RoundFn<Scalar>& round) {
  if (!round) return m;
  return m.unaryExpr(round);
}

template <class Scalar>
Forward<Scalar> allocate_forward(const Problem<Scalar>& p) {
  Forward<Scalar> f;
  f.o.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.e), Scalar(0));
  f.final_state.assign(static_cast<std::size_t>(p.b * p.h * p.d * p.e), Scalar(0));
  return f;
}

template <class Scalar>
Gradients<Scalar> allocate_gradients(const Problem<Scalar>& p, bool with_states) {
  Gradients<Scalar> g;
  g.dq.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.d), Scalar(0));
  g.dk.assign(g.dq.size(), Scalar(0));
  g.dv.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.e), Scalar(0));
  if (with_states) g.dinitial_state.assign(static_cast<std::size_t>(p.b * p.h * p.d * p.e), 0);
  return g;
}

template <class Scalar>
MutMap<Scalar> rows_of(std::vector<Scalar>& x, std::int64_t i, std::int64_t n, std::int64_t w) {
  return MutMap<Scalar>(x.data() + i * n * w, n, w);
}

template <class Scalar>
const Scalar* state_ptr(const std::vector<Scalar>& x,
                        std::int64_t i,
                        std::int64_t d,
                        std::int64_t e) {
  return x.empty() ? nullptr : x.data() + i * d * e;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Recurrence: S_t = lambda S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.

template <class Scalar>
Forward<Scalar> recurrent_forward(const Problem<Scalar>& p) {
  check_problem(p);
  Forward<Scalar> f = allocate_forward(p);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const Scalar lambda = decay(x.s, 1);
    MutMap<Scalar> o = rows_of(f.o, i, p.n, p.e);
    Mat<Scalar> state = state_or_zero(x.s0, p.d, p.e);  // (d, e)
    for (std::int64_t t = 0; t < p.n; ++t) {
      state *= lambda;
      state.noalias() += x.k.row(t).transpose() * x.v.row(t);
      o.row(t).noalias() = p.scale * (x.q.row(t) * state);
    }
    rows_of(f.final_state, i, p.d, p.e) = state;
  });
  return f;
}

// dQ_t = scale dO_t S_t^T (forward sweep); reverse sweep with G = dS_t:
// G_{N-1} = dS_final + scale q^T dO, G_t = lambda G_{t+1} + scale q_t^T dO_t, dK_t = v_t G_t^T,
// dV_t = k_t G_t, dS0 = lambda G_0.
template <class Scalar>
Gradients<Scalar> recurrent_backward(const Problem<Scalar>& p,
                                     const std::vector<Scalar>& dout,
                                     const std::vector<Scalar>& dfinal_state) {
  check_problem(p);
  check_gradients_in(p, dout, dfinal_state);
  Gradients<Scalar> g = allocate_gradients(p, true);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const Scalar lambda = decay(x.s, 1);
    const ConstMap<Scalar> dout_i(dout.data() + i * p.n * p.e, p.n, p.e);
    MutMap<Scalar> dq = rows_of(g.dq, i, p.n, p.d);
    MutMap<Scalar> dk = rows_of(g.dk, i, p.n, p.d);
    MutMap<Scalar> dv = rows_of(g.dv, i, p.n, p.e);

    Mat<Scalar> state = state_or_zero(x.s0, p.d, p.e);  // (d, e)
    for (std::int64_t t = 0; t < p.n; ++t) {
      state *= lambda;
      state.noalias() += x.k.row(t).transpose() * x.v.row(t);
      dq.row(t).noalias() = p.scale * (dout_i.row(t) * state.transpose());
    }

    // (d, e): the gradient arriving at S_t, before the t-th term is added.
    Mat<Scalar> grad = state_or_zero(state_ptr(dfinal_state, i, p.d, p.e), p.d, p.e);
    for (std::int64_t t = p.n - 1; t >= 0; --t) {
      grad.noalias() += p.scale * (x.q.row(t).transpose() * dout_i.row(t));
      dk.row(t).noalias() = x.v.row(t) * grad.transpose();
      dv.row(t).noalias() = x.k.row(t) * grad;
      grad *= lambda;
    }
    rows_of(g.dinitial_state, i, p.d, p.e) = grad;
  });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Quadratic masked form over the whole sequence (one block of length N):
//   O = A V + scale diag(lambda^(t+1)) Q S0,           A = scale (Q K^T) (.) M
//   F = lambda^N S0 + (diag(lambda^(N-1-u)) K)^T V

template <class Scalar>
Forward<Scalar> quadratic_forward(const Problem<Scalar>& p) {
  check_problem(p);
  Forward<Scalar> f = allocate_forward(p);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const Mat<Scalar> mask = decay_mask(x.s, p.n);
    const Mat<Scalar> scores = p.scale * (x.q * x.k.transpose()).cwiseProduct(mask);  // (n, n)
    MutMap<Scalar> o = rows_of(f.o, i, p.n, p.e);
    MutMap<Scalar> final_state = rows_of(f.final_state, i, p.d, p.e);
    o.noalias() = scores * x.v;
    final_state.noalias() = (k_decay(x.s, p.n).asDiagonal() * x.k).transpose() * x.v;
    if (x.s0 != nullptr) {
      const ConstMap<Scalar> s0(x.s0, p.d, p.e);
      o.noalias() += p.scale * (q_decay(x.s, p.n).asDiagonal() * (x.q * s0));
      final_state += decay(x.s, p.n) * s0;
    }
  });
  return f;
}

// dQ = dA K + scale diag(lambda^(t+1)) dO S0^T,       dA = scale (dO V^T) (.) M
// dK = dA^T Q + diag(lambda^(N-1-u)) V dF^T
// dV = A^T dO + diag(lambda^(N-1-u)) K dF
// dS0 = scale (diag(lambda^(t+1)) Q)^T dO + lambda^N dF
template <class Scalar>
Gradients<Scalar> quadratic_backward(const Problem<Scalar>& p,
                                     const std::vector<Scalar>& dout,
                                     const std::vector<Scalar>& dfinal_state) {
  check_problem(p);
  check_gradients_in(p, dout, dfinal_state);
  Gradients<Scalar> g = allocate_gradients(p, true);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const ConstMap<Scalar> dout_i(dout.data() + i * p.n * p.e, p.n, p.e);
    const Mat<Scalar> mask = decay_mask(x.s, p.n);
    const Mat<Scalar> scores = p.scale * (x.q * x.k.transpose()).cwiseProduct(mask);      // (n, n)
    const Mat<Scalar> dscores = p.scale * (dout_i * x.v.transpose()).cwiseProduct(mask);  // (n, n)
    const Vec<Scalar> qd = q_decay(x.s, p.n);
    const Vec<Scalar> kd = k_decay(x.s, p.n);
    MutMap<Scalar> dq = rows_of(g.dq, i, p.n, p.d);
    MutMap<Scalar> dk = rows_of(g.dk, i, p.n, p.d);
    MutMap<Scalar> dv = rows_of(g.dv, i, p.n, p.e);
    MutMap<Scalar> ds0 = rows_of(g.dinitial_state, i, p.d, p.e);
    dq.noalias() = dscores * x.k;
    dk.noalias() = dscores.transpose() * x.q;
    dv.noalias() = scores.transpose() * dout_i;
    ds0.noalias() = p.scale * ((qd.asDiagonal() * x.q).transpose() * dout_i);
    if (x.s0 != nullptr) {
      const ConstMap<Scalar> s0(x.s0, p.d, p.e);
      dq.noalias() += p.scale * (qd.asDiagonal() * (dout_i * s0.transpose()));
    }
    if (!dfinal_state.empty()) {
      const ConstMap<Scalar> dfinal(dfinal_state.data() + i * p.d * p.e, p.d, p.e);
      dk.noalias() += kd.asDiagonal() * (x.v * dfinal.transpose());
      dv.noalias() += kd.asDiagonal() * (x.k * dfinal);
      ds0 += decay(x.s, p.n) * dfinal;
    }
  });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Blocked lightning algorithm (see the header for the equations and the rounding points).

template <class Scalar>
Forward<Scalar> blocked_forward(const Problem<Scalar>& p, int block, const RoundFn<Scalar>& round) {
  check_problem(p);
  check_block(block);
  Forward<Scalar> f = allocate_forward(p);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const std::int64_t full = std::min<std::int64_t>(block, p.n);
    const Mat<Scalar> mask = decay_mask(x.s, full);  // (full, full)
    const Vec<Scalar> qd = q_decay(x.s, full);       // (full)
    const Vec<Scalar> kd_full = k_decay(x.s, full);  // (full)
    MutMap<Scalar> o = rows_of(f.o, i, p.n, p.e);
    Mat<Scalar> state = state_or_zero(x.s0, p.d, p.e);  // (d, e), Scalar precision throughout
    for (std::int64_t t0 = 0; t0 < p.n; t0 += full) {
      const std::int64_t len = std::min(full, p.n - t0);
      const auto qi = x.q.middleRows(t0, len);  // (len, d)
      const auto ki = x.k.middleRows(t0, len);  // (len, d)
      const auto vi = x.v.middleRows(t0, len);  // (len, e)
      Mat<Scalar> scores =
          p.scale * (qi * ki.transpose()).cwiseProduct(mask.topLeftCorner(len, len));  // (len, len)
      round_in_place(scores, round);
      Mat<Scalar> oi = scores * vi;  // intra
      oi.noalias() +=
          p.scale * (qd.head(len).asDiagonal() * (qi * rounded(state, round)));  // inter
      round_in_place(oi, round);
      o.middleRows(t0, len) = oi;
      const Vec<Scalar> kd = len == full ? kd_full : k_decay(x.s, len);
      state *= decay(x.s, len);
      state.noalias() += (kd.asDiagonal() * ki).transpose() * vi;
    }
    rows_of(f.final_state, i, p.d, p.e) = state;
  });
  return f;
}

template <class Scalar>
Gradients<Scalar> blocked_backward(const Problem<Scalar>& p,
                                   const std::vector<Scalar>& dout,
                                   const std::vector<Scalar>& dfinal_state,
                                   int block,
                                   const RoundFn<Scalar>& round) {
  check_problem(p);
  check_gradients_in(p, dout, dfinal_state);
  check_block(block);
  Gradients<Scalar> g = allocate_gradients(p, true);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const ConstMap<Scalar> dout_i(dout.data() + i * p.n * p.e, p.n, p.e);
    const std::int64_t full = std::min<std::int64_t>(block, p.n);
    const Mat<Scalar> mask = decay_mask(x.s, full);  // (full, full)
    const Vec<Scalar> qd = q_decay(x.s, full);       // (full)
    const Vec<Scalar> kd_full = k_decay(x.s, full);  // (full)
    MutMap<Scalar> dq = rows_of(g.dq, i, p.n, p.d);
    MutMap<Scalar> dk = rows_of(g.dk, i, p.n, p.d);
    MutMap<Scalar> dv = rows_of(g.dv, i, p.n, p.e);

    // Forward sweep: dQ_i = [scale (dO_i V_i^T) (.) M] K_i + scale diag(lambda^(r+1)) dO_i S^T.
    Mat<Scalar> state = state_or_zero(x.s0, p.d, p.e);  // (d, e)
    for (std::int64_t t0 = 0; t0 < p.n; t0 += full) {
      const std::int64_t len = std::min(full, p.n - t0);
      const auto ki = x.k.middleRows(t0, len);      // (len, d)
      const auto vi = x.v.middleRows(t0, len);      // (len, e)
      const auto doi = dout_i.middleRows(t0, len);  // (len, e)
      Mat<Scalar> dscores =
          p.scale *
          (doi * vi.transpose()).cwiseProduct(mask.topLeftCorner(len, len));  // (len, len)
      round_in_place(dscores, round);
      Mat<Scalar> dqi = dscores * ki;  // intra
      dqi.noalias() += p.scale * (qd.head(len).asDiagonal() *
                                  (doi * rounded(state, round).transpose()));  // inter
      round_in_place(dqi, round);
      dq.middleRows(t0, len) = dqi;
      const Vec<Scalar> kd = len == full ? kd_full : k_decay(x.s, len);
      state *= decay(x.s, len);
      state.noalias() += (kd.asDiagonal() * ki).transpose() * vi;
    }

    // Reverse sweep. grad: (d, e), the gradient arriving at the end of the current block.
    Mat<Scalar> grad = state_or_zero(state_ptr(dfinal_state, i, p.d, p.e), p.d, p.e);
    const std::int64_t num_blocks = (p.n + full - 1) / full;
    for (std::int64_t blk = num_blocks - 1; blk >= 0; --blk) {
      const std::int64_t t0 = blk * full;
      const std::int64_t len = std::min(full, p.n - t0);
      const auto qi = x.q.middleRows(t0, len);      // (len, d)
      const auto ki = x.k.middleRows(t0, len);      // (len, d)
      const auto vi = x.v.middleRows(t0, len);      // (len, e)
      const auto doi = dout_i.middleRows(t0, len);  // (len, e)
      const auto m = mask.topLeftCorner(len, len);
      Mat<Scalar> scores = p.scale * (qi * ki.transpose()).cwiseProduct(m);    // (len, len)
      Mat<Scalar> dscores = p.scale * (doi * vi.transpose()).cwiseProduct(m);  // (len, len)
      round_in_place(scores, round);
      round_in_place(dscores, round);
      const Vec<Scalar> kd = len == full ? kd_full : k_decay(x.s, len);
      const Mat<Scalar> grad_r = rounded(grad, round);
      Mat<Scalar> dki = dscores.transpose() * qi;                    // intra
      dki.noalias() += kd.asDiagonal() * (vi * grad_r.transpose());  // inter
      Mat<Scalar> dvi = scores.transpose() * doi;                    // intra
      dvi.noalias() += kd.asDiagonal() * (ki * grad_r);              // inter
      round_in_place(dki, round);
      round_in_place(dvi, round);
      dk.middleRows(t0, len) = dki;
      dv.middleRows(t0, len) = dvi;
      grad *= decay(x.s, len);
      grad.noalias() += p.scale * ((qd.head(len).asDiagonal() * qi).transpose() * doi);
    }
    rows_of(g.dinitial_state, i, p.d, p.e) = grad;
  });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Causal softmax attention.

namespace {

// (n, n): P = softmax(scale Q K^T + causal mask) by rows; zero above the diagonal.
template <class Scalar>
Mat<Scalar> softmax_probs(const Slice<Scalar>& x, Scalar scale) {
  Mat<Scalar> probs = scale * (x.q * x.k.transpose());
  const std::int64_t n = probs.rows();
  for (std::int64_t t = 0; t < n; ++t) {
    auto row = probs.row(t);
    const Scalar max = row.head(t + 1).maxCoeff();
    row.head(t + 1) = (row.head(t + 1).array() - max).exp();
    row.head(t + 1) /= row.head(t + 1).sum();
    row.tail(n - t - 1).setZero();
  }
  return probs;
}

}  // namespace

template <class Scalar>
Forward<Scalar> softmax_forward(const Problem<Scalar>& p) {
  check_problem(p);
  Forward<Scalar> f;
  f.o.assign(static_cast<std::size_t>(p.b * p.h * p.n * p.e), Scalar(0));
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    rows_of(f.o, i, p.n, p.e).noalias() = softmax_probs(x, p.scale) * x.v;
  });
  return f;
}

// dV = P^T dO; dP = dO V^T; dZ = P (.) (dP - rowsum(P (.) dP)); dQ = scale dZ K; dK = scale dZ^T Q.
template <class Scalar>
Gradients<Scalar> softmax_backward(const Problem<Scalar>& p, const std::vector<Scalar>& dout) {
  check_problem(p);
  check_size("dout", dout, p.b * p.h * p.n * p.e, false);
  Gradients<Scalar> g = allocate_gradients(p, false);
  parallel_for(p.b * p.h, [&](std::int64_t i) {
    const Slice<Scalar> x = slice(p, i);
    const ConstMap<Scalar> dout_i(dout.data() + i * p.n * p.e, p.n, p.e);
    const Mat<Scalar> probs = softmax_probs(x, p.scale);  // (n, n)
    const Mat<Scalar> dprobs = dout_i * x.v.transpose();  // (n, n)
    const Vec<Scalar> row_dot = probs.cwiseProduct(dprobs).rowwise().sum();
    const Mat<Scalar> dlogits =
        probs.cwiseProduct(dprobs - row_dot.replicate(1, p.n));  // (n, n), zero above the diagonal
    rows_of(g.dq, i, p.n, p.d).noalias() = p.scale * (dlogits * x.k);
    rows_of(g.dk, i, p.n, p.d).noalias() = p.scale * (dlogits.transpose() * x.q);
    rows_of(g.dv, i, p.n, p.e).noalias() = probs.transpose() * dout_i;
  });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Problems and slopes.

template <class Scalar>
std::vector<Scalar> random_uniform(std::size_t count, std::uint64_t seed) {
  // mt19937_64 is specified bit for bit by the standard, uniform_real_distribution is not: map the
  // top 53 bits to [0, 1) by hand so every platform draws the same numbers.
  std::mt19937_64 gen(seed);
  std::vector<Scalar> out(count);
  for (auto& x : out) {
    const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;
    x = static_cast<Scalar>(2 * u - 1);
  }
  return out;
}

template <class Scalar>
Problem<Scalar> random_problem(std::int64_t b,
                               std::int64_t h,
                               std::int64_t n,
                               std::int64_t d,
                               std::int64_t e,
                               std::vector<Scalar> s,
                               bool with_initial_state,
                               std::uint64_t seed) {
  Problem<Scalar> p;
  p.b = b;
  p.h = h;
  p.n = n;
  p.d = d;
  p.e = e;
  p.s = std::move(s);
  p.scale = static_cast<Scalar>(1 / std::sqrt(static_cast<double>(d)));
  const std::vector<Scalar> all = random_uniform<Scalar>(
      static_cast<std::size_t>(b * h * (n * (2 * d + e) + (with_initial_state ? d * e : 0))), seed);
  auto take = [&, at = std::size_t{0}](std::int64_t count) mutable {
    std::vector<Scalar> part(all.begin() + static_cast<std::ptrdiff_t>(at),
                             all.begin() + static_cast<std::ptrdiff_t>(at + count));
    at += static_cast<std::size_t>(count);
    return part;
  };
  p.q = take(b * h * n * d);
  p.k = take(b * h * n * d);
  p.v = take(b * h * n * e);
  if (with_initial_state) p.initial_state = take(b * h * d * e);
  check_problem(p);
  return p;
}

std::vector<double> alibi_slopes(std::int64_t h) {
  if (h < 1) throw std::invalid_argument("lightning::ref: alibi_slopes needs h >= 1");
  std::vector<double> s(static_cast<std::size_t>(h));
  for (std::int64_t i = 0; i < h; ++i) {
    s[static_cast<std::size_t>(i)] =
        std::exp2(-8.0 * static_cast<double>(i + 1) / static_cast<double>(h));
  }
  return s;
}

LIGHTNING_REF_CPU_DECLARE(double, )
LIGHTNING_REF_CPU_DECLARE(float, )

}  // namespace lightning::ref
