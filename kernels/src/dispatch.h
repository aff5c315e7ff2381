// Runtime sizes -> compile-time constants: one small function template per axis, each with a CPU
// test that every supported value maps to its constant and anything else throws.
#pragma once

#include <string>
#include <type_traits>

#include <lightning/api.h>

namespace lightning::detail {

template <class F>
decltype(auto) dispatch_head_dim(std::int64_t d, F&& f) {
  switch (d) {
    case 64:
      return f(std::integral_constant<int, 64>{});
    case 128:
      return f(std::integral_constant<int, 128>{});
    default:
      throw InvalidArgument(LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM,
                            "lightning: unsupported head dim " + std::to_string(d));
  }
}

// Element types are passed as tags so that this header needs no CUDA types.
enum class ElementKind { kBF16, kFP16, kFP32 };

template <class F>
decltype(auto) dispatch_dtype(lightning_dtype_t t, F&& f) {
  switch (t) {
    case LIGHTNING_BF16:
      return f(std::integral_constant<ElementKind, ElementKind::kBF16>{});
    case LIGHTNING_FP16:
      return f(std::integral_constant<ElementKind, ElementKind::kFP16>{});
    case LIGHTNING_FP32:
      return f(std::integral_constant<ElementKind, ElementKind::kFP32>{});
  }
  throw InvalidArgument(LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
                        "lightning: unsupported dtype code " + std::to_string(static_cast<int>(t)));
}

}  // namespace lightning::detail
