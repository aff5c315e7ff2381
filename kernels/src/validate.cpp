// Input validation for the forward and backward problems: every check runs on the host, before any
// device work, and names the tensor and the axis at fault.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

#include <lightning/api.h>

namespace lightning {
namespace {

constexpr const char* kAxisNames[4] = {"B", "H", "N", "D"};

[[noreturn]] void fail(Status status, const std::string& message) {
  throw InvalidArgument(status, "lightning: " + message);
}

std::string shape_string(const Tensor& t) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < 4; ++i) os << (i ? ", " : "") << t.shape[i];
  os << "]";
  return os.str();
}

bool is_known_dtype(lightning_dtype_t t) {
  return t == LIGHTNING_BF16 || t == LIGHTNING_FP16 || t == LIGHTNING_FP32;
}

// Rank, sizes, strides, dtype and alignment of one tensor; shapes against others come later.
void check_tensor(const Tensor& t, const char* name) {
  if (t.data == nullptr) fail(LIGHTNING_ERROR_NULL_POINTER, std::string(name) + ": data is null");
  if (t.rank != 4) {
    fail(LIGHTNING_ERROR_INVALID_RANK,
         std::string(name) + ": rank is " + std::to_string(t.rank) + ", expected 4");
  }
  if (!is_known_dtype(t.dtype)) {
    fail(LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
         std::string(name) + ": unknown dtype code " + std::to_string(static_cast<int>(t.dtype)));
  }
  for (int i = 0; i < 4; ++i) {
    if (t.shape[i] < 1) {
      fail(LIGHTNING_ERROR_INVALID_VALUE, std::string(name) + ": shape " + shape_string(t) +
                                              " has a size < 1 on axis " + std::to_string(i));
    }
    if (t.stride[i] < 0) {
      fail(LIGHTNING_ERROR_INVALID_VALUE, std::string(name) + ": stride on axis " +
                                              std::to_string(i) + " is negative (" +
                                              std::to_string(t.stride[i]) + ")");
    }
  }
  if (t.stride[3] != 1) {
    fail(LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS,
         std::string(name) + ": last axis is not contiguous (stride[3] = " +
             std::to_string(t.stride[3]) + ", expected 1)");
  }
  const auto elem = static_cast<std::int64_t>(dtype_size(t.dtype));
  // 16-byte vector loads: the base and every row start must be 16-byte aligned.
  if (reinterpret_cast<std::uintptr_t>(t.data) % 16 != 0) {
    fail(LIGHTNING_ERROR_MISALIGNED, std::string(name) + ": data pointer is not 16-byte aligned");
  }
  for (int i = 0; i < 3; ++i) {
    if ((t.stride[i] * elem) % 16 != 0) {
      fail(LIGHTNING_ERROR_MISALIGNED, std::string(name) + ": stride on axis " + std::to_string(i) +
                                           " (" + std::to_string(t.stride[i]) +
                                           " elements) is not a multiple of 16 bytes");
    }
  }
}

void check_head_dim(std::int64_t dim, const char* name, const char* which) {
  if (dim != 64 && dim != 128) {
    fail(LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM, std::string(name) + ": head dim " + which + " = " +
                                                   std::to_string(dim) +
                                                   " is not supported (64 or 128)");
  }
}

// `t` must have logical shape {b, h, n, last}.
void check_shape(const Tensor& t,
                 const char* name,
                 const Shape& s,
                 std::int64_t n_or_d,
                 std::int64_t last,
                 const char* ref) {
  const std::int64_t want[4] = {s.b, s.h, n_or_d, last};
  for (int i = 0; i < 4; ++i) {
    if (t.shape[i] != want[i]) {
      fail(LIGHTNING_ERROR_SHAPE_MISMATCH,
           std::string(name) + ": shape " + shape_string(t) + " does not match " + ref + " (axis " +
               std::to_string(i) + " is " + std::to_string(t.shape[i]) + ", expected " +
               std::to_string(want[i]) + ")");
    }
  }
}

void check_same_dtype(const Tensor& t, const char* name, lightning_dtype_t want) {
  if (t.dtype != want) {
    fail(LIGHTNING_ERROR_UNSUPPORTED_DTYPE, std::string(name) + ": dtype " + dtype_name(t.dtype) +
                                                " differs from q's " + dtype_name(want));
  }
}

// An fp32 state [B, H, D, E]; absent (data == nullptr) is allowed.
void check_state(const Tensor& t, const char* name, const Shape& s) {
  if (t.data == nullptr) return;
  check_tensor(t, name);
  if (t.dtype != LIGHTNING_FP32) {
    fail(LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
         std::string(name) + ": states are fp32, got " + dtype_name(t.dtype));
  }
  check_shape(t, name, s, s.d, s.e, "[B, H, D, E]");
}

void check_scale(float scale) {
  if (!std::isfinite(scale)) {
    fail(LIGHTNING_ERROR_INVALID_VALUE, "scale is not finite (" + std::to_string(scale) + ")");
  }
}

// q, k, v (and o or dout) shapes; returns the sizes.
Shape check_qkv(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_tensor(q, "q");
  check_tensor(k, "k");
  check_tensor(v, "v");
  Shape s{q.shape[0], q.shape[1], q.shape[2], q.shape[3], v.shape[3]};
  check_head_dim(s.d, "q", "D");
  check_shape(k, "k", s, s.n, s.d, "q's [B, H, N, D]");
  check_head_dim(s.e, "v", "E");
  check_shape(v, "v", s, s.n, s.e, "q's [B, H, N] and E");
  check_same_dtype(k, "k", q.dtype);
  check_same_dtype(v, "v", q.dtype);
  return s;
}

}  // namespace

void validate_slopes(const float* s_host, std::int64_t h) {
  if (s_host == nullptr) fail(LIGHTNING_ERROR_NULL_POINTER, "s: host copy is null");
  for (std::int64_t i = 0; i < h; ++i) {
    const float v = s_host[i];
    if (std::isnan(v)) fail(LIGHTNING_ERROR_INVALID_SLOPE, "s[" + std::to_string(i) + "] is NaN");
    if (!std::isfinite(v)) {
      fail(LIGHTNING_ERROR_INVALID_SLOPE, "s[" + std::to_string(i) + "] is infinite");
    }
    if (v < 0.f) {
      fail(LIGHTNING_ERROR_INVALID_SLOPE,
           "s[" + std::to_string(i) + "] = " + std::to_string(v) + " is negative (need s >= 0)");
    }
  }
}

Shape validate(const lightning_fwd_params_t& p, const float* s_host) {
  const Shape s = check_qkv(p.q, p.k, p.v);
  check_tensor(p.o, "o");
  check_shape(p.o, "o", s, s.n, s.e, "v's [B, H, N, E]");
  check_same_dtype(p.o, "o", p.q.dtype);
  if (p.s == nullptr) fail(LIGHTNING_ERROR_NULL_POINTER, "s: pointer is null");
  check_scale(p.scale);
  check_state(p.initial_state, "initial_state", s);
  check_state(p.final_state, "final_state", s);
  if (s_host != nullptr) validate_slopes(s_host, s.h);
  return s;
}

Shape validate(const lightning_bwd_params_t& p, const float* s_host) {
  const Shape s = check_qkv(p.q, p.k, p.v);
  check_tensor(p.dout, "dout");
  check_shape(p.dout, "dout", s, s.n, s.e, "v's [B, H, N, E]");
  check_same_dtype(p.dout, "dout", p.q.dtype);
  check_tensor(p.dq, "dq");
  check_shape(p.dq, "dq", s, s.n, s.d, "q's [B, H, N, D]");
  check_same_dtype(p.dq, "dq", p.q.dtype);
  check_tensor(p.dk, "dk");
  check_shape(p.dk, "dk", s, s.n, s.d, "k's [B, H, N, D]");
  check_same_dtype(p.dk, "dk", p.q.dtype);
  check_tensor(p.dv, "dv");
  check_shape(p.dv, "dv", s, s.n, s.e, "v's [B, H, N, E]");
  check_same_dtype(p.dv, "dv", p.q.dtype);
  if (p.s == nullptr) fail(LIGHTNING_ERROR_NULL_POINTER, "s: pointer is null");
  check_scale(p.scale);
  check_state(p.initial_state, "initial_state", s);
  check_state(p.dfinal_state, "dfinal_state", s);
  check_state(p.dinitial_state, "dinitial_state", s);
  if (s_host != nullptr) validate_slopes(s_host, s.h);
  return s;
}

}  // namespace lightning
