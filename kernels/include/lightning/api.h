// lightning: the C++ API. Host-only and C++17 (shared by .cpp and .cu translation units).
//
// Every entry point validates its input first and throws lightning::InvalidArgument (a
// std::invalid_argument) naming the problem; CUDA failures throw lightning::CudaError. The C ABI
// (lightning/lightning.h) wraps exactly these functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include <lightning/errors.h>
#include <lightning/lightning.h>

namespace lightning {

using Status = lightning_status_t;
using Stream = lightning_stream_t;
using Tensor = lightning_tensor_t;

enum class DType : int { kBF16 = LIGHTNING_BF16, kFP16 = LIGHTNING_FP16, kFP32 = LIGHTNING_FP32 };

inline constexpr lightning_dtype_t to_c(DType t) {
  return static_cast<lightning_dtype_t>(t);
}
std::size_t dtype_size(lightning_dtype_t t);  // bytes per element; throws on an unknown dtype
const char* dtype_name(lightning_dtype_t t);  // "bf16", "fp16", "fp32", "unknown"
DType parse_dtype(const std::string& name);   // "bf16" | "fp16" | "fp32"; throws otherwise

// Memory layouts of activations. Both give the logical view [B, H, N, D].
enum class Layout { kBHND, kBNHD };
const char* layout_name(Layout layout);  // "bhnd" | "bnhd"
Layout parse_layout(const std::string& name);

// A logical [b, h, n, d] view of contiguous memory laid out as `layout`.
Tensor make_tensor(void* data,
                   DType dtype,
                   Layout layout,
                   std::int64_t b,
                   std::int64_t h,
                   std::int64_t n,
                   std::int64_t d);
// A contiguous fp32 state [b, h, d, e].
Tensor make_state(float* data, std::int64_t b, std::int64_t h, std::int64_t d, std::int64_t e);
// Number of elements a contiguous tensor of this logical shape occupies.
std::int64_t numel(const Tensor& t);
// Element offset of logical index (i0, i1, i2, i3), 64-bit.
inline std::int64_t offset(
    const Tensor& t, std::int64_t i0, std::int64_t i1, std::int64_t i2, std::int64_t i3) {
  return i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2] + i3 * t.stride[3];
}

// The C structs with C++ defaults (rank 4 on every tensor, scale 1). They are the C structs, so
// &params passes straight to the C ABI.
struct ForwardParams : lightning_fwd_params_t {
  ForwardParams();
};
struct BackwardParams : lightning_bwd_params_t {
  BackwardParams();
};

// The problem sizes a params struct describes, after validation.
struct Shape {
  std::int64_t b = 0, h = 0, n = 0, d = 0, e = 0;
};

// Throw InvalidArgument for anything wrong in params. With s_host (H floats in host memory) the
// values of s are checked too. Touches no device memory; returns the validated sizes.
Shape validate(const lightning_fwd_params_t& params, const float* s_host = nullptr);
Shape validate(const lightning_bwd_params_t& params, const float* s_host = nullptr);
// Throw InvalidArgument unless every s[h] is finite and >= 0.
void validate_slopes(const float* s_host, std::int64_t h);

// Device workspace in bytes for these shapes (validates first).
std::size_t forward_workspace_size(const lightning_fwd_params_t& params);
std::size_t backward_workspace_size(const lightning_bwd_params_t& params);

// Enqueue the forward / backward pass on `stream`. Throws NotBuilt in a build without CUDA.
void forward(const lightning_fwd_params_t& params, Stream stream = nullptr);
void backward(const lightning_bwd_params_t& params, Stream stream = nullptr);

// Whether this build holds the CUDA kernels.
bool built_with_cuda();
const char* version();

}  // namespace lightning
