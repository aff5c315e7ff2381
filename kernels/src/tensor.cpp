// Small host helpers of the public API: dtypes, layouts, views, params defaults.
#include <cstdint>
#include <string>

#include <lightning/api.h>

namespace lightning {

std::size_t dtype_size(lightning_dtype_t t) {
  switch (t) {
    case LIGHTNING_BF16:
    case LIGHTNING_FP16:
      return 2;
    case LIGHTNING_FP32:
      return 4;
  }
  throw InvalidArgument(LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
                        "lightning: unknown dtype code " + std::to_string(static_cast<int>(t)));
}

const char* dtype_name(lightning_dtype_t t) {
  switch (t) {
    case LIGHTNING_BF16:
      return "bf16";
    case LIGHTNING_FP16:
      return "fp16";
    case LIGHTNING_FP32:
      return "fp32";
  }
  return "unknown";
}

DType parse_dtype(const std::string& name) {
  if (name == "bf16") return DType::kBF16;
  if (name == "fp16") return DType::kFP16;
  if (name == "fp32") return DType::kFP32;
  throw InvalidArgument(LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
                        "lightning: unknown dtype '" + name + "' (bf16, fp16 or fp32)");
}

const char* layout_name(Layout layout) {
  return layout == Layout::kBHND ? "bhnd" : "bnhd";
}

Layout parse_layout(const std::string& name) {
  if (name == "bhnd") return Layout::kBHND;
  if (name == "bnhd") return Layout::kBNHD;
  throw InvalidArgument(LIGHTNING_ERROR_INVALID_VALUE,
                        "lightning: unknown layout '" + name + "' (bhnd or bnhd)");
}

Tensor make_tensor(void* data,
                   DType dtype,
                   Layout layout,
                   std::int64_t b,
                   std::int64_t h,
                   std::int64_t n,
                   std::int64_t d) {
  Tensor t{};
  t.data = data;
  t.dtype = to_c(dtype);
  t.rank = 4;
  t.shape[0] = b;
  t.shape[1] = h;
  t.shape[2] = n;
  t.shape[3] = d;
  t.stride[3] = 1;
  if (layout == Layout::kBHND) {
    t.stride[2] = d;
    t.stride[1] = n * d;
    t.stride[0] = h * n * d;
  } else {  // memory [B, N, H, D]
    t.stride[1] = d;
    t.stride[2] = h * d;
    t.stride[0] = n * h * d;
  }
  return t;
}

Tensor make_state(float* data, std::int64_t b, std::int64_t h, std::int64_t d, std::int64_t e) {
  Tensor t = make_tensor(data, DType::kFP32, Layout::kBHND, b, h, d, e);
  return t;
}

std::int64_t numel(const Tensor& t) {
  return t.shape[0] * t.shape[1] * t.shape[2] * t.shape[3];
}

ForwardParams::ForwardParams() : lightning_fwd_params_t{} {
  lightning_fwd_params_init(this);
}

BackwardParams::BackwardParams() : lightning_bwd_params_t{} {
  lightning_bwd_params_init(this);
}

}  // namespace lightning
