#include "model.h"

namespace lightning::bench {

double bytes_per_token_head(Mode mode, std::int64_t d, std::int64_t e, std::size_t elem_bytes) {
  const double es = static_cast<double>(elem_bytes);
  const double fwd = static_cast<double>(2 * d + 2 * e) * es;
  const double bwd = static_cast<double>(4 * d + 3 * e) * es;
  switch (mode) {
    case Mode::kFwd:
      return fwd;
    case Mode::kBwd:
      return bwd;
    case Mode::kFwdBwd:
      return fwd + bwd;
  }
  return 0;
}

double flops_per_token_head(
    Family family, Mode mode, std::int64_t n, std::int64_t d, std::int64_t e) {
  const double D = static_cast<double>(d), E = static_cast<double>(e);
  double fwd = 0, bwd = 0;
  switch (family) {
    case Family::kLinearBlocked: {
      const double bk = kModelBlock;
      fwd = 2 * bk * (D + E) + 4 * D * E;
      bwd = 2 * bk * (3 * D + 2 * E) + 10 * D * E;
      break;
    }
    case Family::kLinearRecurrent:
      fwd = 4 * D * E;
      bwd = 10 * D * E;
      break;
    case Family::kSoftmax: {
      const double keys = (static_cast<double>(n) + 1) / 2;
      fwd = 2 * keys * (D + E);
      bwd = 2.5 * fwd;
      break;
    }
  }
  switch (mode) {
    case Mode::kFwd:
      return fwd;
    case Mode::kBwd:
      return bwd;
    case Mode::kFwdBwd:
      return fwd + bwd;
  }
  return 0;
}

Work model_work(Family family,
                Mode mode,
                std::int64_t b,
                std::int64_t h,
                std::int64_t n,
                std::int64_t d,
                std::int64_t e,
                std::size_t elem_bytes) {
  Work w;
  w.tokens = static_cast<double>(b) * static_cast<double>(n);
  const double token_heads = w.tokens * static_cast<double>(h);
  w.bytes = token_heads * bytes_per_token_head(mode, d, e, elem_bytes);
  w.flops = token_heads * flops_per_token_head(family, mode, n, d, e);
  return w;
}

const char* flops_model_name(Family family) {
  switch (family) {
    case Family::kLinearBlocked:
      return "linear-blocked: fwd 2*64*(D+E) + 4DE, bwd 2*64*(3D+2E) + 10DE per token per head";
    case Family::kLinearRecurrent:
      return "linear-recurrent: fwd 4DE, bwd 10DE per token per head";
    case Family::kSoftmax:
      return "softmax-causal: fwd (N+1)(D+E), bwd 2.5x fwd per token per head";
  }
  return "?";
}

}  // namespace lightning::bench
