// Every supported head dim and dtype maps to its compile-time constant; anything else throws.
#include <gtest/gtest.h>

#include <lightning/api.h>

#include "dispatch.h"

namespace lightning::detail {
namespace {

TEST(Dispatch, MapsEverySupportedHeadDimToItsConstant) {
  EXPECT_EQ(dispatch_head_dim(64, [](auto d) { return decltype(d)::value; }), 64);
  EXPECT_EQ(dispatch_head_dim(128, [](auto d) { return decltype(d)::value; }), 128);
}

TEST(Dispatch, RejectsUnsupportedHeadDims) {
  for (std::int64_t d : {0, 32, 63, 96, 129, 256}) {
    try {
      dispatch_head_dim(d, [](auto) { return 0; });
      ADD_FAILURE() << "head dim " << d << " accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_EQ(e.status(), LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM);
      EXPECT_NE(std::string(e.what()).find(std::to_string(d)), std::string::npos);
    }
  }
}

TEST(Dispatch, MapsEveryDtypeToItsKind) {
  auto kind = [](lightning_dtype_t t) {
    return dispatch_dtype(t, [](auto k) { return decltype(k)::value; });
  };
  EXPECT_EQ(kind(LIGHTNING_BF16), ElementKind::kBF16);
  EXPECT_EQ(kind(LIGHTNING_FP16), ElementKind::kFP16);
  EXPECT_EQ(kind(LIGHTNING_FP32), ElementKind::kFP32);
  EXPECT_THROW(kind(static_cast<lightning_dtype_t>(3)), InvalidArgument);
}

}  // namespace
}  // namespace lightning::detail
