// Every bad input of the API is rejected before any device work, with a status (C ABI) or an
// InvalidArgument (C++) whose message names the problem. Host-only: no GPU needed.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/context_parallel.h>
#include <lightning/lightning.h>

namespace lightning {
namespace {

// Host memory stands in for device memory: validation never dereferences the pointers.
struct Fixture {
  std::int64_t b = 2, h = 4, n = 100, d = 64, e = 128;
  std::vector<float> storage = std::vector<float>(1 << 22);
  std::vector<float> slopes = std::vector<float>(4, 0.5f);
  ForwardParams fwd;
  BackwardParams bwd;

  float* at(std::size_t offset) { return storage.data() + offset; }  // 16-byte aligned slots

  explicit Fixture(Layout layout = Layout::kBHND, DType dtype = DType::kBF16) {
    const std::size_t slot = 1 << 18;  // floats per tensor slot, plenty for these shapes
    fwd.q = make_tensor(at(0 * slot), dtype, layout, b, h, n, d);
    fwd.k = make_tensor(at(1 * slot), dtype, layout, b, h, n, d);
    fwd.v = make_tensor(at(2 * slot), dtype, layout, b, h, n, e);
    fwd.o = make_tensor(at(3 * slot), dtype, layout, b, h, n, e);
    fwd.s = slopes.data();
    fwd.initial_state = make_state(at(4 * slot), b, h, d, e);
    fwd.final_state = make_state(at(5 * slot), b, h, d, e);

    bwd.q = fwd.q;
    bwd.k = fwd.k;
    bwd.v = fwd.v;
    bwd.dout = make_tensor(at(6 * slot), dtype, layout, b, h, n, e);
    bwd.s = slopes.data();
    bwd.initial_state = fwd.initial_state;
    bwd.dfinal_state = make_state(at(7 * slot), b, h, d, e);
    bwd.dq = make_tensor(at(8 * slot), dtype, layout, b, h, n, d);
    bwd.dk = make_tensor(at(9 * slot), dtype, layout, b, h, n, d);
    bwd.dv = make_tensor(at(10 * slot), dtype, layout, b, h, n, e);
    bwd.dinitial_state = make_state(at(11 * slot), b, h, d, e);
  }
};

// Expect the C ABI to return `status` with a message containing `needle`, and the C++ API to
// throw InvalidArgument with the same status and message.
void expect_forward_rejected(const ForwardParams& p,
                             const float* s_host,
                             lightning_status_t status,
                             const std::string& needle) {
  EXPECT_EQ(lightning_forward_validate(&p, s_host), status)
      << lightning_status_string(status)
      << " expected; message: " << lightning_last_error_message();
  EXPECT_NE(std::string(lightning_last_error_message()).find(needle), std::string::npos)
      << "message '" << lightning_last_error_message() << "' does not name '" << needle << "'";
  try {
    validate(p, s_host);
    ADD_FAILURE() << "validate() accepted bad input (" << needle << ")";
  } catch (const InvalidArgument& err) {
    EXPECT_EQ(err.status(), status);
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
}

void expect_backward_rejected(const BackwardParams& p,
                              const float* s_host,
                              lightning_status_t status,
                              const std::string& needle) {
  EXPECT_EQ(lightning_backward_validate(&p, s_host), status)
      << "message: " << lightning_last_error_message();
  EXPECT_NE(std::string(lightning_last_error_message()).find(needle), std::string::npos)
      << "message '" << lightning_last_error_message() << "' does not name '" << needle << "'";
  EXPECT_THROW(validate(p, s_host), std::invalid_argument);
}

TEST(ApiValidation, AcceptsWellFormedForwardAndBackwardInBothLayoutsAndAllDtypes) {
  for (Layout layout : {Layout::kBHND, Layout::kBNHD}) {
    for (DType dtype : {DType::kBF16, DType::kFP16, DType::kFP32}) {
      Fixture f(layout, dtype);
      EXPECT_EQ(lightning_forward_validate(&f.fwd, f.slopes.data()), LIGHTNING_SUCCESS)
          << lightning_last_error_message();
      EXPECT_EQ(lightning_backward_validate(&f.bwd, f.slopes.data()), LIGHTNING_SUCCESS)
          << lightning_last_error_message();
      const Shape s = validate(f.fwd, f.slopes.data());
      EXPECT_EQ(s.b, 2);
      EXPECT_EQ(s.h, 4);
      EXPECT_EQ(s.n, 100);
      EXPECT_EQ(s.d, 64);
      EXPECT_EQ(s.e, 128);
    }
  }
}

TEST(ApiValidation, AcceptsAbsentOptionalStates) {
  Fixture f;
  f.fwd.initial_state.data = nullptr;
  f.fwd.final_state.data = nullptr;
  f.bwd.initial_state.data = nullptr;
  f.bwd.dfinal_state.data = nullptr;
  f.bwd.dinitial_state.data = nullptr;
  EXPECT_EQ(lightning_forward_validate(&f.fwd, nullptr), LIGHTNING_SUCCESS);
  EXPECT_EQ(lightning_backward_validate(&f.bwd, nullptr), LIGHTNING_SUCCESS);
}

TEST(ApiValidation, RejectsNullPointers) {
  {
    Fixture f;
    f.fwd.q.data = nullptr;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_NULL_POINTER, "q: data is null");
  }
  {
    Fixture f;
    f.fwd.o.data = nullptr;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_NULL_POINTER, "o: data is null");
  }
  {
    Fixture f;
    f.fwd.s = nullptr;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_NULL_POINTER, "s: pointer is null");
  }
  {
    Fixture f;
    f.bwd.dk.data = nullptr;
    expect_backward_rejected(f.bwd, nullptr, LIGHTNING_ERROR_NULL_POINTER, "dk: data is null");
  }
  EXPECT_EQ(lightning_forward_validate(nullptr, nullptr), LIGHTNING_ERROR_NULL_POINTER);
  EXPECT_EQ(lightning_forward(nullptr, nullptr), LIGHTNING_ERROR_NULL_POINTER);
  EXPECT_EQ(lightning_backward(nullptr, nullptr), LIGHTNING_ERROR_NULL_POINTER);
  size_t bytes = 0;
  EXPECT_EQ(lightning_forward_workspace_size(nullptr, &bytes), LIGHTNING_ERROR_NULL_POINTER);
}

TEST(ApiValidation, RejectsWrongRanks) {
  Fixture f;
  f.fwd.v.rank = 3;
  expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_INVALID_RANK, "v: rank is 3");
  Fixture g;
  g.bwd.dout.rank = 5;
  expect_backward_rejected(g.bwd, nullptr, LIGHTNING_ERROR_INVALID_RANK, "dout: rank is 5");
}

TEST(ApiValidation, RejectsMismatchedShapes) {
  {
    Fixture f;
    f.fwd.k.shape[2] = 99;  // N differs from q's
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_SHAPE_MISMATCH, "k: shape");
  }
  {
    Fixture f;
    f.fwd.v.shape[1] = 3;  // H differs
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_SHAPE_MISMATCH, "v: shape");
  }
  {
    Fixture f;
    f.fwd.o.shape[3] = 64;  // o's E differs from v's
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_SHAPE_MISMATCH, "o: shape");
  }
  {
    Fixture f;
    f.fwd.initial_state.shape[2] = 128;  // state D differs
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_SHAPE_MISMATCH, "initial_state");
  }
  {
    Fixture f;
    f.bwd.dv.shape[0] = 1;
    expect_backward_rejected(f.bwd, nullptr, LIGHTNING_ERROR_SHAPE_MISMATCH, "dv: shape");
  }
  {
    Fixture f;
    f.fwd.q.shape[2] = 0;  // empty sequence
    f.fwd.k.shape[2] = 0;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_INVALID_VALUE, "size < 1");
  }
}

TEST(ApiValidation, RejectsUnsupportedHeadDims) {
  {
    Fixture f;
    f.fwd.q.shape[3] = 96;
    f.fwd.k.shape[3] = 96;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM, "D = 96");
  }
  {
    Fixture f;
    f.fwd.v.shape[3] = 32;
    f.fwd.o.shape[3] = 32;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM, "E = 32");
  }
}

TEST(ApiValidation, RejectsUnsupportedAndMixedDtypes) {
  {
    Fixture f;
    f.fwd.k.dtype = static_cast<lightning_dtype_t>(7);
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_UNSUPPORTED_DTYPE, "unknown dtype");
  }
  {
    Fixture f;
    f.fwd.v.dtype = LIGHTNING_FP16;  // q is bf16
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
                            "v: dtype fp16 differs from q's bf16");
  }
  {
    Fixture f;
    f.fwd.final_state.dtype = LIGHTNING_BF16;
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_UNSUPPORTED_DTYPE,
                            "final_state: states are fp32");
  }
  EXPECT_THROW(parse_dtype("fp8"), std::invalid_argument);
  EXPECT_EQ(parse_dtype("fp16"), DType::kFP16);
}

TEST(ApiValidation, RejectsNonContiguousLastAxis) {
  Fixture f;
  f.fwd.q.stride[3] = 2;
  expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS,
                          "q: last axis is not contiguous");
  Fixture g;
  g.bwd.dinitial_state.stride[3] = 0;
  expect_backward_rejected(g.bwd, nullptr, LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS,
                           "dinitial_state: last axis");
}

TEST(ApiValidation, RejectsNegativeNanAndInfiniteSlopes) {
  Fixture f;
  f.slopes[2] = -0.25f;
  expect_forward_rejected(f.fwd, f.slopes.data(), LIGHTNING_ERROR_INVALID_SLOPE,
                          "s[2] = -0.250000 is negative");
  f.slopes[2] = std::numeric_limits<float>::quiet_NaN();
  expect_forward_rejected(f.fwd, f.slopes.data(), LIGHTNING_ERROR_INVALID_SLOPE, "s[2] is NaN");
  f.slopes[2] = std::numeric_limits<float>::infinity();
  expect_backward_rejected(f.bwd, f.slopes.data(), LIGHTNING_ERROR_INVALID_SLOPE,
                           "s[2] is infinite");
  f.slopes[2] = 0.0f;  // no decay is valid
  EXPECT_EQ(lightning_forward_validate(&f.fwd, f.slopes.data()), LIGHTNING_SUCCESS);
}

TEST(ApiValidation, RejectsMisalignedPointersAndStrides) {
  {
    Fixture f;
    f.fwd.q.data = static_cast<char*>(f.fwd.q.data) + 2;  // bf16-aligned, not 16-byte aligned
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_MISALIGNED,
                            "q: data pointer is not 16-byte aligned");
  }
  {
    Fixture f;
    f.fwd.v.stride[2] = 129;  // rows of v start off the 16-byte grid
    expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_MISALIGNED, "v: stride on axis 2");
  }
  {
    Fixture f;
    f.bwd.dfinal_state.data = static_cast<char*>(f.bwd.dfinal_state.data) + 4;
    expect_backward_rejected(f.bwd, nullptr, LIGHTNING_ERROR_MISALIGNED, "dfinal_state");
  }
}

TEST(ApiValidation, RejectsNegativeStridesAndNonFiniteScale) {
  Fixture f;
  f.fwd.k.stride[1] = -64;
  expect_forward_rejected(f.fwd, nullptr, LIGHTNING_ERROR_INVALID_VALUE, "k: stride on axis 1");
  Fixture g;
  g.fwd.scale = std::numeric_limits<float>::quiet_NaN();
  expect_forward_rejected(g.fwd, nullptr, LIGHTNING_ERROR_INVALID_VALUE, "scale is not finite");
}

TEST(ApiValidation, EveryStatusHasADistinctName) {
  std::vector<std::string> names;
  for (int s = LIGHTNING_SUCCESS; s <= LIGHTNING_ERROR_INTERNAL; ++s) {
    names.emplace_back(lightning_status_string(static_cast<lightning_status_t>(s)));
    EXPECT_EQ(names.back().rfind("LIGHTNING_", 0), 0u) << names.back();
    EXPECT_NE(names.back(), "LIGHTNING_STATUS_UNKNOWN") << "status " << s;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end());
  EXPECT_STREQ(lightning_status_string(static_cast<lightning_status_t>(999)),
               "LIGHTNING_STATUS_UNKNOWN");
}

TEST(ApiValidation, ParamsInitSetsRankFourAndUnitScale) {
  lightning_fwd_params_t p;
  ASSERT_EQ(lightning_fwd_params_init(&p), LIGHTNING_SUCCESS);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.q.rank, 4);
  EXPECT_EQ(p.final_state.rank, 4);
  EXPECT_EQ(p.initial_state.data, nullptr);
  lightning_bwd_params_t g;
  ASSERT_EQ(lightning_bwd_params_init(&g), LIGHTNING_SUCCESS);
  EXPECT_EQ(g.dinitial_state.rank, 4);
  EXPECT_EQ(g.dv.rank, 4);
}

TEST(ApiValidation, WorkspaceQueryValidatesFirst) {
  Fixture f;
  size_t bytes = 123;
  EXPECT_EQ(lightning_forward_workspace_size(&f.fwd, &bytes), LIGHTNING_SUCCESS);
  f.fwd.q.shape[3] = 80;
  f.fwd.k.shape[3] = 80;
  EXPECT_EQ(lightning_forward_workspace_size(&f.fwd, &bytes), LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM);
}

TEST(ApiValidation, LayoutsDescribeTheSameLogicalTensor) {
  // Element [b, h, n, d] of a [B, N, H, D] buffer sits at ((b * N + n) * H + h) * D + d.
  float dummy[4];
  const Tensor t = make_tensor(dummy, DType::kFP32, Layout::kBNHD, 2, 3, 5, 64);
  EXPECT_EQ(offset(t, 1, 2, 4, 7), ((1 * 5 + 4) * 3 + 2) * 64 + 7);
  const Tensor u = make_tensor(dummy, DType::kFP32, Layout::kBHND, 2, 3, 5, 64);
  EXPECT_EQ(offset(u, 1, 2, 4, 7), ((1 * 3 + 2) * 5 + 4) * 64 + 7);
  EXPECT_EQ(parse_layout("bnhd"), Layout::kBNHD);
  EXPECT_THROW(parse_layout("nhd"), std::invalid_argument);
}

// Context parallelism (lightning/context_parallel.h): a shard that does not fit the sequence, or a
// sequence state given on a rank that does not own it, is rejected with its status.
template <class Params>
void expect_cp_rejected(const Params& p,
                        const cp::Shard& shard,
                        lightning_status_t status,
                        const std::string& needle) {
  try {
    cp::validate(p, shard);
    ADD_FAILURE() << "cp::validate accepted bad input (" << needle << ")";
  } catch (const InvalidArgument& err) {
    EXPECT_EQ(err.status(), status) << err.what();
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
}

TEST(ContextParallelValidation, AcceptsEqualShardsAndAShorterLastOne) {
  Fixture f;  // n = 100 tokens per call
  EXPECT_NO_THROW(cp::validate(f.fwd, {0, 4, 100}));
  f.fwd.initial_state.data = f.bwd.initial_state.data = f.bwd.dfinal_state.data = nullptr;
  EXPECT_NO_THROW(cp::validate(f.fwd, {2, 4, 100}));
  EXPECT_NO_THROW(cp::validate(f.fwd, {3, 4, 128}));  // the last rank: 100 <= 128
  EXPECT_NO_THROW(cp::validate(f.bwd, {1, 4, 100}));
  // Exchange buffers: (world + 2) states forward, twice that backward; [B, H, D, E] fp32 each.
  const std::size_t state = 2 * 4 * 64 * 128 * sizeof(float);
  EXPECT_EQ(cp::forward_exchange_bytes(f.fwd, {1, 4, 100}), 6 * state);
  EXPECT_EQ(cp::backward_exchange_bytes(f.bwd, {1, 4, 100}), 12 * state);
}

TEST(ContextParallelValidation, RejectsShardsThatDoNotFit) {
  Fixture f;
  expect_cp_rejected(f.fwd, {0, 0, 100}, LIGHTNING_ERROR_INVALID_VALUE, "world must be >= 1");
  expect_cp_rejected(f.fwd, {4, 4, 100}, LIGHTNING_ERROR_INVALID_VALUE, "outside 0..3");
  expect_cp_rejected(f.fwd, {-1, 4, 100}, LIGHTNING_ERROR_INVALID_VALUE, "outside 0..3");
  expect_cp_rejected(f.fwd, {0, 4, 0}, LIGHTNING_ERROR_INVALID_VALUE, "shard_len must be >= 1");
  expect_cp_rejected(f.fwd, {0, 4, 128}, LIGHTNING_ERROR_SHAPE_MISMATCH, "every shard but");
  expect_cp_rejected(f.bwd, {0, 1, 64}, LIGHTNING_ERROR_SHAPE_MISMATCH, "more than shard_len");
}

TEST(ContextParallelValidation, RejectsSequenceStatesOnTheWrongRank) {
  Fixture f;  // every state present
  expect_cp_rejected(f.fwd, {1, 2, 100}, LIGHTNING_ERROR_INVALID_VALUE, "on rank 0 only");
  f.bwd.initial_state.data = nullptr;
  expect_cp_rejected(f.bwd, {0, 2, 100}, LIGHTNING_ERROR_INVALID_VALUE, "on the last rank only");
  EXPECT_NO_THROW(cp::validate(f.bwd, {1, 2, 100}));  // dS_final on the last rank is right
  // The single-GPU checks still run first.
  f.fwd.q.shape[3] = f.fwd.k.shape[3] = 80;
  expect_cp_rejected(f.fwd, {0, 1, 100}, LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM, "");
}

}  // namespace
}  // namespace lightning
