// The CUDA side of the API: device queries, the slope check's copy, and the passes of the forward
// kernel that make the forward and the backward (dtype x D x E -> one explicit instantiation
// each, in kernels/instantiations/).
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <lightning/cuda_check.h>

#include "dispatch.h"
#include "forward.cuh"
#include "launch.h"

namespace lightning::detail {

int device_sm_count() {
  int device = 0;
  int sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    // No usable device: plan for the H200's 132 SMs, so that workspace queries still answer
    // (nothing can be launched here anyway). Clear the error so that it does not stick.
    cudaGetLastError();
    return 132;
  }
  return sms;
}

std::vector<float> copy_slopes_to_host(const float* s_device, std::int64_t h, Stream stream) {
  std::vector<float> host(static_cast<std::size_t>(h));
  LIGHTNING_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), s_device, h * sizeof(float), cudaMemcpyDeviceToHost, stream));
  LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

// Element i (< b * h * per_head) of the (b, h, d, e) states, for the kernels with one thread per
// element (the scan, the state-only pass's copy-out).
struct StateElement {
  std::int64_t bh, bb, hh;
  int de, d, e;
};
__device__ __forceinline__ StateElement state_element(const FwdKernelParams& p,
                                                      std::int64_t i,
                                                      std::int64_t per_head,
                                                      int e_dim) {
  StateElement x;
  x.bh = i / per_head;
  x.de = static_cast<int>(i % per_head);
  x.d = x.de / e_dim;
  x.e = x.de % e_dim;
  x.bb = x.bh / p.h;
  x.hh = x.bh % p.h;
  return x;
}

__global__ void lightning_segment_scan_kernel(const __grid_constant__ FwdKernelParams p,
                                              int d_dim,
                                              int e_dim) {
  const std::int64_t per_head = static_cast<std::int64_t>(d_dim) * e_dim;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.b * p.h * per_head) return;
  const StateElement el = state_element(p, i, per_head, e_dim);
  const std::int64_t bb = el.bb, hh = el.hh, bh = el.bh;
  const int de = el.de, d = el.d, e = el.e;
  const float s = p.s[hh];
  float x = p.initial_state ? p.initial_state[bb * p.is_stride[0] + hh * p.is_stride[1] +
                                              d * p.is_stride[2] + e * p.is_stride[3]]
                            : 0.f;
  const std::int64_t pieces = (p.segments - 1) * p.local_pieces;
  const std::int64_t piece_len = p.segment_len / p.local_pieces;
  float* ws = p.workspace + bh * workspace_slots(p) * per_head + de;
  for (std::int64_t i = 0; i < pieces; ++i) {
    const float local = ws[i * per_head];
    // The incoming state of segment i / local_pieces replaces its first piece's local state.
    if (i % p.local_pieces == 0) ws[i * per_head] = x;
    // Pieces before the last segment are full length (a state-only pass's last piece may end at
    // N); the initial state decays once less with init_shift.
    const std::int64_t len = min(piece_len, max(p.n - i * piece_len, std::int64_t{0}));
    const std::int64_t steps = len - (i == 0 ? p.init_shift : 0);
    x = expf(-s * static_cast<float>(steps)) * x + local;
  }
  ws[pieces * per_head] = x;  // incoming state of the last segment
}

void run_segment_scan(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  const std::int64_t total = shape.b * shape.h * shape.d * shape.e;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((total + kThreads - 1) / kThreads);
  lightning_segment_scan_kernel<<<blocks, kThreads, 0, stream>>>(kp, static_cast<int>(shape.d),
                                                                 static_cast<int>(shape.e));
  LIGHTNING_CHECK_LAUNCH();
}

// LIGHTNING_NO_WS=1: lightning_fwd_kernel for the D = E = 128 output passes (forward.cuh).
bool warp_specialised_allowed() {
  static const bool off = [] {
    const char* env = std::getenv("LIGHTNING_NO_WS");
    return env != nullptr && env[0] == '1';
  }();
  return !off;
}

namespace {

// One pass of the forward kernel over (q, k, v) -> o with head dims d (q, k) and e (v, o).
// `reverse` walks the sequence backwards through a view with a negative sequence stride (the
// kernels' offsets are signed 64-bit). States are given with both of their strides, so a
// transposed state is a view too.
struct Pass {
  const Tensor* q;
  const Tensor* k;
  const Tensor* v;
  const Tensor* o;
  std::int64_t d, e;
  bool reverse = false;
  float intra_scale = 1, inter_scale = 1, update_scale = 1;
  int init_shift = 0, final_extra_decay = 0;
  const float* initial_state = nullptr;
  std::int64_t is_stride[4] = {};
  float* final_state = nullptr;
  std::int64_t fs_stride[4] = {};
};

// f(element, D, E): element a value of the kernel's element type (float for fp32), D and E
// integral constants.
template <class F>
void dispatch_kernel(lightning_dtype_t dtype, std::int64_t d, std::int64_t e, F&& f) {
  dispatch_dtype(dtype, [&](auto kind) {
    dispatch_head_dim(d, [&](auto dd) {
      dispatch_head_dim(e, [&](auto ee) {
        constexpr ElementKind kKind = decltype(kind)::value;
        if constexpr (kKind == ElementKind::kBF16) {
          f(__nv_bfloat16{}, dd, ee);
        } else if constexpr (kKind == ElementKind::kFP16) {
          f(__half{}, dd, ee);
        } else {
          f(float{}, dd, ee);
        }
      });
    });
  });
}

void set_view(
    const Tensor& t, bool reverse, std::int64_t n, const void*& data, std::int64_t (&stride)[3]) {
  const std::size_t el = dtype_size(t.dtype);
  for (int i = 0; i < 3; ++i) stride[i] = t.stride[i];
  data = t.data;
  if (reverse) {
    data = static_cast<const char*>(t.data) + (n - 1) * t.stride[2] * static_cast<std::int64_t>(el);
    stride[2] = -t.stride[2];
  }
}

// ---- tensor maps for the TMA instantiations ----------------------------------------------------

// cuTensorMapEncodeTiled, fetched from the driver through the runtime (no link to libcuda).
using EncodeTiledFn = CUresult (*)(CUtensorMap*,
                                   CUtensorMapDataType,
                                   cuuint32_t,
                                   void*,
                                   const cuuint64_t*,
                                   const cuuint64_t*,
                                   const cuuint32_t*,
                                   const cuuint32_t*,
                                   CUtensorMapInterleave,
                                   CUtensorMapSwizzle,
                                   CUtensorMapL2promotion,
                                   CUtensorMapFloatOOBfill);

EncodeTiledFn tensor_map_encoder() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
    const cudaError_t status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000,
                                                                cudaEnableDefault, &found);
#else
    const cudaError_t status =
        cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &found);
#endif
    if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// LIGHTNING_NO_TMA=1: the cp.async instantiations everywhere (the TMA path's A/B baseline, and
// what runs where a tensor map cannot describe a view).
bool tma_allowed() {
  static const bool off = [] {
    const char* env = std::getenv("LIGHTNING_NO_TMA");
    return env != nullptr && env[0] == '1';
  }();
  return !off;
}

// The driver's encoder where TMA may be used, else null (the passes then take cp.async).
EncodeTiledFn tma_encoder() {
  return tma_allowed() ? tensor_map_encoder() : nullptr;
}

// One tiled map: 128-byte swizzle (the tiles' layout), unit element strides, zeros for what lies
// outside the tensor.
template <int kRank>
bool encode_swizzled(EncodeTiledFn encode,
                     CUtensorMap* map,
                     CUtensorMapDataType type,
                     const void* data,
                     const cuuint64_t (&dims)[kRank],
                     const cuuint64_t (&strides)[kRank - 1],
                     const cuuint32_t (&box)[kRank]) {
  cuuint32_t unit[kRank];
  for (cuuint32_t& u : unit) u = 1;
  return encode(map, type, kRank, const_cast<void*>(data), dims, strides, box, unit,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// A stride in 16-bit elements, in bytes.
cuuint64_t bytes(std::int64_t stride) {
  return static_cast<cuuint64_t>(stride) * 2;
}

// A view (sequence stride s[2], head s[1], batch s[0], in elements) as a tensor map. An input
// (q, k, v, x) is the 5-d (64 elements, n, dim / 64, h, b): one box is a whole (64 tokens, dim)
// tile as 64-column swizzle halves, the layout the kernel's wgmma descriptors read. An output
// (o, o2) is the 4-d (dim, n, h, b) with boxes of 64 tokens x 64 values: one warpgroup's tile.
enum class MapRole { kInput, kOutput };
bool encode_view_map(EncodeTiledFn encode,
                     CUtensorMap* map,
                     CUtensorMapDataType type,
                     const void* data,
                     const std::int64_t (&stride)[3],
                     const Shape& shape,
                     std::int64_t dim,
                     MapRole role) {
  const auto n = static_cast<cuuint64_t>(shape.n), h = static_cast<cuuint64_t>(shape.h),
             b = static_cast<cuuint64_t>(shape.b);
  if (role == MapRole::kOutput) {
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(dim), n, h, b};
    const cuuint64_t strides[3] = {bytes(stride[2]), bytes(stride[1]), bytes(stride[0])};
    const cuuint32_t box[4] = {64, 64, 1, 1};
    return encode_swizzled(encode, map, type, data, dims, strides, box);
  }
  const auto halves = static_cast<cuuint64_t>(dim / 64);
  const cuuint64_t dims[5] = {64, n, halves, h, b};
  const cuuint64_t strides[4] = {bytes(stride[2]), 128, bytes(stride[1]), bytes(stride[0])};
  const cuuint32_t box[5] = {64, 64, static_cast<cuuint32_t>(halves), 1, 1};
  return encode_swizzled(encode, map, type, data, dims, strides, box);
}

// The fused dV / dK pass's six maps, of the tensors in their own (forward) order: the kernel
// reads each reversed block as one box and flips positions itself (kernels/README.md).
bool encode_tma_maps_dual(FwdKernelParams& kp,
                          const lightning_bwd_params_t& params,
                          const Shape& shape) {
  const EncodeTiledFn encode = tma_encoder();
  if (encode == nullptr) return false;
  const CUtensorMapDataType type = params.q.dtype == LIGHTNING_BF16
                                       ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                       : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  auto view = [&](CUtensorMap* map, const Tensor& t, std::int64_t dim, MapRole role) {
    const std::int64_t stride[3] = {t.stride[0], t.stride[1], t.stride[2]};
    return encode_view_map(encode, map, type, t.data, stride, shape, dim, role);
  };
  const MapRole in = MapRole::kInput, out = MapRole::kOutput;
  return view(&kp.tm_q, params.k, shape.d, in) && view(&kp.tm_k, params.q, shape.d, in) &&
         view(&kp.tm_v, params.dout, shape.e, in) && view(&kp.tm_x, params.v, shape.e, in) &&
         view(&kp.tm_o, params.dv, shape.e, out) && view(&kp.tm_o2, params.dk, shape.d, out);
}

// The kernel parameters of a pass, with its plan's segments. outputs = false: a state-only pass
// (run_state_pass), which reads K and V with cp.async, so no tensor maps are encoded.
FwdKernelParams pass_params(const Pass& pass,
                            const Shape& shape,
                            const float* s,
                            void* workspace,
                            lightning_dtype_t dtype,
                            bool outputs = true) {
  const ForwardPlan plan = plan_forward(shape, device_sm_count(), kernel_kind(dtype));
  FwdKernelParams kp{};
  const void* q;
  const void* k;
  const void* v;
  const void* o;
  set_view(*pass.q, pass.reverse, shape.n, q, kp.q_stride);
  set_view(*pass.k, pass.reverse, shape.n, k, kp.k_stride);
  set_view(*pass.v, pass.reverse, shape.n, v, kp.v_stride);
  set_view(*pass.o, pass.reverse, shape.n, o, kp.o_stride);
  kp.q = q;
  kp.k = k;
  kp.v = v;
  kp.o = const_cast<void*>(o);
  kp.s = s;
  kp.intra_scale = pass.intra_scale;
  kp.inter_scale = pass.inter_scale;
  kp.update_scale = pass.update_scale;
  kp.init_shift = pass.init_shift;
  kp.final_extra_decay = pass.final_extra_decay;
  kp.initial_state = pass.initial_state;
  kp.final_state = pass.final_state;
  for (int i = 0; i < 4; ++i) {
    kp.is_stride[i] = pass.is_stride[i];
    kp.fs_stride[i] = pass.fs_stride[i];
  }
  kp.workspace = static_cast<float*>(workspace);
  kp.b = shape.b;
  kp.h = shape.h;
  kp.n = shape.n;
  kp.segments = plan.segments;
  kp.segment_len = plan.segment_len;
  kp.local_pieces = plan.local_pieces;
  // A tensor map cannot walk a sequence backwards: the reversed passes keep cp.async.
  kp.use_tma = outputs && !pass.reverse && kernel_kind(dtype) == KernelKind::kTensorCore &&
               encode_tma_maps(kp, dtype, shape);
  return kp;
}

// The kernels of one pass as kp describes it, for its dtype and head dims.
void run_kernels(const FwdKernelParams& kp,
                 const Shape& shape,
                 lightning_dtype_t dtype,
                 Stream stream) {
  dispatch_kernel(dtype, shape.d, shape.e, [&](auto element, auto dd, auto ee) {
    using Element = decltype(element);
    constexpr int kD = decltype(dd)::value;
    constexpr int kE = decltype(ee)::value;
    if constexpr (std::is_same_v<Element, float>) {
      run_forward_fp32<kD, kE>(kp, shape, stream);
    } else {
      run_forward<Element, kD, kE>(kp, shape, stream);
    }
  });
}

void run_pass(const Pass& pass,
              const Shape& problem,
              const float* s,
              void* workspace,
              lightning_dtype_t dtype,
              Stream stream) {
  const Shape shape{problem.b, problem.h, problem.n, pass.d, pass.e};
  const FwdKernelParams kp = pass_params(pass, shape, s, workspace, dtype);
  run_kernels(kp, shape, dtype, stream);
}

// A state view (b, h, d, e) with its (d, e) strides swapped: the transposed state (b, h, e, d).
void transposed(const Tensor& t, std::int64_t (&stride)[4]) {
  stride[0] = t.stride[0];
  stride[1] = t.stride[1];
  stride[2] = t.stride[3];
  stride[3] = t.stride[2];
}

void plain(const Tensor& t, std::int64_t (&stride)[4]) {
  for (int i = 0; i < 4; ++i) stride[i] = t.stride[i];
}

// ---- state-only passes (context parallelism's contributions) ---------------------------------

// The state in the workspace's last slot, times lambda with final_extra_decay, to the pass's
// final state (one thread per element).
__global__ void lightning_state_out_kernel(const __grid_constant__ FwdKernelParams p,
                                           int d_dim,
                                           int e_dim) {
  const std::int64_t per_head = static_cast<std::int64_t>(d_dim) * e_dim;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.b * p.h * per_head) return;
  const StateElement el = state_element(p, i, per_head, e_dim);
  const std::int64_t slots = workspace_slots(p);
  float x = p.workspace[(el.bh * slots + slots - 1) * per_head + el.de];
  if (p.final_extra_decay) x *= expf(-p.s[el.hh]);
  p.final_state[el.bb * p.fs_stride[0] + el.hh * p.fs_stride[1] + el.d * p.fs_stride[2] +
                el.e * p.fs_stride[3]] = x;
}

// Pieces of a state-only pass (plan_state_pieces), as many as `scratch_bytes` allows (pieces + 1
// states per (b, h)); 0 when it cannot hold two.
std::int64_t state_pass_pieces(const Shape& shape,
                               lightning_dtype_t dtype,
                               std::size_t scratch_bytes) {
  const std::int64_t states = static_cast<std::int64_t>(
      scratch_bytes / (static_cast<std::size_t>(shape.b * shape.h * shape.d * shape.e) * 4));
  return plan_state_pieces(shape, device_sm_count(), kernel_kind(dtype), states - 1);
}

// The state at the end of a pass, to pass.final_state, without its outputs: the local-state
// kernel over the whole sequence in pieces (as one segment followed by an empty one), the scan
// from pass.initial_state, then the last slot out. False, with nothing launched, when `scratch`
// (device memory for the pieces' states) is too small.
bool run_state_pass(const Pass& pass,
                    const Shape& problem,
                    const float* s,
                    void* scratch,
                    std::size_t scratch_bytes,
                    lightning_dtype_t dtype,
                    Stream stream) {
  const Shape shape{problem.b, problem.h, problem.n, pass.d, pass.e};
  const std::int64_t pieces = state_pass_pieces(shape, dtype, scratch_bytes);
  if (pieces == 0) return false;
  FwdKernelParams kp = pass_params(pass, shape, s, scratch, dtype, /*outputs=*/false);
  const std::int64_t blocks = (shape.n + 63) / 64;
  kp.segments = 2;
  kp.local_pieces = pieces;
  kp.segment_len = (blocks + pieces - 1) / pieces * pieces * 64;
  kp.state_only = 1;
  run_kernels(kp, shape, dtype, stream);
  const std::int64_t total = shape.b * shape.h * shape.d * shape.e;
  constexpr int kThreads = 256;
  lightning_state_out_kernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads,
                               0, stream>>>(kp, static_cast<int>(shape.d),
                                            static_cast<int>(shape.e));
  LIGHTNING_CHECK_LAUNCH();
  return true;
}

}  // namespace

// The four maps of a forward-direction tensor-core pass; false (use cp.async) when the driver or
// the views do not allow them.
bool encode_tma_maps(FwdKernelParams& kp, lightning_dtype_t dtype, const Shape& shape) {
  const EncodeTiledFn encode = tma_encoder();
  if (encode == nullptr) return false;
  const CUtensorMapDataType type =
      dtype == LIGHTNING_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const MapRole in = MapRole::kInput;
  return encode_view_map(encode, &kp.tm_q, type, kp.q, kp.q_stride, shape, shape.d, in) &&
         encode_view_map(encode, &kp.tm_k, type, kp.k, kp.k_stride, shape, shape.d, in) &&
         encode_view_map(encode, &kp.tm_v, type, kp.v, kp.v_stride, shape, shape.e, in) &&
         encode_view_map(encode, &kp.tm_o, type, kp.o, kp.o_stride, shape, shape.e,
                         MapRole::kOutput);
}

namespace {

// The forward as a pass of the kernel: from the initial state, writing the final state.
Pass forward_pass(const lightning_fwd_params_t& params, const Shape& shape) {
  Pass pass{&params.q, &params.k, &params.v, &params.o, shape.d, shape.e};
  pass.intra_scale = pass.inter_scale = params.scale;
  pass.initial_state = static_cast<const float*>(params.initial_state.data);
  plain(params.initial_state, pass.is_stride);
  pass.final_state = static_cast<float*>(params.final_state.data);
  plain(params.final_state, pass.fs_stride);
  return pass;
}

}  // namespace

void launch_forward(const lightning_fwd_params_t& params, const Shape& shape, Stream stream) {
  run_pass(forward_pass(params, shape), shape, params.s, params.workspace, params.q.dtype, stream);
}

namespace {

// The backward's dV pass (see launch_backward): also the gradient of the initial state.
Pass dv_pass(const lightning_bwd_params_t& params, const Shape& shape) {
  Pass dv{&params.k, &params.q, &params.dout, &params.dv, shape.d, shape.e, true};
  dv.intra_scale = dv.update_scale = params.scale;
  dv.init_shift = 1;
  dv.initial_state = static_cast<const float*>(params.dfinal_state.data);
  plain(params.dfinal_state, dv.is_stride);
  dv.final_state = static_cast<float*>(params.dinitial_state.data);
  dv.final_extra_decay = 1;
  plain(params.dinitial_state, dv.fs_stride);
  return dv;
}

void run_dv_pass(const lightning_bwd_params_t& params, const Shape& shape, Stream stream) {
  run_pass(dv_pass(params, shape), shape, params.s, params.workspace, params.q.dtype, stream);
}

// dV and dK in one pass (FwdMode::kDual): the dV pass's tiles and state, plus x = V and
// o2 = dK over the same reversed views. Tensor-core dtypes only.
void run_dv_dk_pass(const lightning_bwd_params_t& params, const Shape& shape, Stream stream) {
  const Pass dv = dv_pass(params, shape);
  FwdKernelParams kp = pass_params(dv, shape, params.s, params.workspace, params.q.dtype);
  const void* x;
  const void* o2;
  set_view(params.v, true, shape.n, x, kp.x_stride);
  set_view(params.dk, true, shape.n, o2, kp.o2_stride);
  kp.x = x;
  kp.o2 = const_cast<void*>(o2);
  kp.use_tma = encode_tma_maps_dual(kp, params, shape);
  dispatch_kernel(params.q.dtype, shape.d, shape.e, [&](auto element, auto dd, auto ee) {
    using Element = decltype(element);
    if constexpr (std::is_same_v<Element, float>) {
      throw std::logic_error("the fused dV/dK pass has no fp32 kernel");
    } else {
      run_backward_dual<Element, decltype(dd)::value, decltype(ee)::value>(kp, shape, stream);
    }
  });
}

// LIGHTNING_BWD_SEPARATE=1 runs dV and dK as two passes (the fused pass's A/B baseline).
bool fused_dv_dk(lightning_dtype_t dtype) {
  static const bool separate = [] {
    const char* env = std::getenv("LIGHTNING_BWD_SEPARATE");
    return env != nullptr && env[0] == '1';
  }();
  return !separate && kernel_kind(dtype) == KernelKind::kTensorCore;
}

}  // namespace

// The gradients as forward passes (kernels/README.md, "Backward"):
//   dQ = scale dO S^T:  q' = dO, k' = V, v' = K, from S0^T;
//   dV = K dS:          q' = K,  k' = Q, v' = dO, reversed, from dS_final (undecayed), the
//                       state accumulating scale Q^T dO; its final state times lambda is dS0;
//   dK = V dS^T:        q' = V,  k' = dO, v' = Q, reversed, from dS_final^T.
// The passes run one after another on the stream and share the workspace. For bf16/fp16 the dV
// and dK passes are one (run_dv_dk_pass: the dV pass's state, dK from a bf16 copy of it), unless
// LIGHTNING_BWD_SEPARATE=1.
void launch_backward(const lightning_bwd_params_t& params, const Shape& shape, Stream stream) {
  const auto* s0 = static_cast<const float*>(params.initial_state.data);
  const auto* dsf = static_cast<const float*>(params.dfinal_state.data);

  Pass dq{&params.dout, &params.v, &params.k, &params.dq, shape.e, shape.d};
  dq.intra_scale = dq.inter_scale = params.scale;
  dq.initial_state = s0;
  transposed(params.initial_state, dq.is_stride);
  run_pass(dq, shape, params.s, params.workspace, params.q.dtype, stream);

  if (fused_dv_dk(params.q.dtype)) {
    run_dv_dk_pass(params, shape, stream);
    return;
  }
  run_dv_pass(params, shape, stream);

  Pass dk{&params.v, &params.dout, &params.q, &params.dk, shape.e, shape.d, true};
  dk.intra_scale = dk.update_scale = params.scale;
  dk.init_shift = 1;
  dk.initial_state = dsf;
  transposed(params.dfinal_state, dk.is_stride);
  run_pass(dk, shape, params.s, params.workspace, params.q.dtype, stream);
}

void launch_state_gradient(const lightning_bwd_params_t& params,
                           const Shape& shape,
                           Stream stream) {
  run_dv_pass(params, shape, stream);
}

bool launch_forward_state(const lightning_fwd_params_t& params,
                          const Shape& shape,
                          void* scratch,
                          std::size_t scratch_bytes,
                          Stream stream) {
  return run_state_pass(forward_pass(params, shape), shape, params.s, scratch, scratch_bytes,
                        params.q.dtype, stream);
}

bool launch_state_gradient_state_only(const lightning_bwd_params_t& params,
                                      const Shape& shape,
                                      void* scratch,
                                      std::size_t scratch_bytes,
                                      Stream stream) {
  return run_state_pass(dv_pass(params, shape), shape, params.s, scratch, scratch_bytes,
                        params.q.dtype, stream);
}

__global__ void lightning_cp_combine_kernel(const float* __restrict__ s,
                                            std::int64_t h,
                                            std::int64_t per_head,
                                            std::int64_t total,
                                            const float* __restrict__ gathered,
                                            std::int64_t rank_stride,
                                            std::int64_t suffix_offset,
                                            int rank,
                                            int world,
                                            std::int64_t shard_len,
                                            float* __restrict__ prefix,
                                            float* __restrict__ suffix) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const float decay = expf(-s[(i / per_head) % h] * static_cast<float>(shard_len));
  if (prefix != nullptr) {
    float x = 0.f;
    for (int j = 0; j < rank; ++j) x = decay * x + gathered[j * rank_stride + i];
    prefix[i] = x;
  }
  if (suffix != nullptr) {
    float y = 0.f;
    for (int j = world - 1; j > rank; --j) {
      y = decay * y + gathered[j * rank_stride + suffix_offset + i];
    }
    suffix[i] = y;
  }
}

void launch_cp_combine(const float* s,
                       const Shape& shape,
                       const float* gathered,
                       std::int64_t rank_stride,
                       std::int64_t suffix_offset,
                       int rank,
                       int world,
                       std::int64_t shard_len,
                       float* prefix,
                       float* suffix,
                       Stream stream) {
  const std::int64_t total = shape.b * shape.h * shape.d * shape.e;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((total + kThreads - 1) / kThreads);
  lightning_cp_combine_kernel<<<blocks, kThreads, 0, stream>>>(
      s, shape.h, shape.d * shape.e, total, gathered, rank_stride, suffix_offset, rank, world,
      shard_len, prefix, suffix);
  LIGHTNING_CHECK_LAUNCH();
}

}  // namespace lightning::detail
