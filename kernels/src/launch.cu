// The CUDA side of the API: device queries, the slope check's copy, and the forward dispatch
// (dtype x D x E -> one explicit instantiation each, in kernels/instantiations/).
#include <vector>

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

__global__ void lightning_segment_scan_kernel(const __grid_constant__ FwdKernelParams p,
                                              int d_dim,
                                              int e_dim) {
  const std::int64_t per_head = static_cast<std::int64_t>(d_dim) * e_dim;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.b * p.h * per_head) return;
  const std::int64_t bh = i / per_head;
  const int de = static_cast<int>(i % per_head);
  const int d = de / e_dim, e = de % e_dim;
  const std::int64_t bb = bh / p.h, hh = bh % p.h;
  const float s = p.s[hh];
  float x =
      p.initial_state
          ? p.initial_state[bb * p.is_stride[0] + hh * p.is_stride[1] + d * p.is_stride[2] + e]
          : 0.f;
  float* ws = p.workspace + bh * p.segments * per_head + de;
  for (std::int64_t g = 0; g + 1 < p.segments; ++g) {
    const float local = ws[g * per_head];
    ws[g * per_head] = x;                                          // incoming state of segment g
    x = expf(-s * static_cast<float>(p.segment_len)) * x + local;  // segment g is full length
  }
  ws[(p.segments - 1) * per_head] = x;  // incoming state of the last segment
}

void run_segment_scan(const FwdKernelParams& kp, const Shape& shape, cudaStream_t stream) {
  const std::int64_t total = shape.b * shape.h * shape.d * shape.e;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((total + kThreads - 1) / kThreads);
  lightning_segment_scan_kernel<<<blocks, kThreads, 0, stream>>>(kp, static_cast<int>(shape.d),
                                                                 static_cast<int>(shape.e));
  LIGHTNING_CHECK_LAUNCH();
}

FwdKernelParams make_fwd_kernel_params(const lightning_fwd_params_t& params,
                                       const Shape& shape,
                                       const ForwardPlan& plan) {
  FwdKernelParams kp{};
  kp.q = params.q.data;
  kp.k = params.k.data;
  kp.v = params.v.data;
  kp.o = params.o.data;
  for (int i = 0; i < 3; ++i) {
    kp.q_stride[i] = params.q.stride[i];
    kp.k_stride[i] = params.k.stride[i];
    kp.v_stride[i] = params.v.stride[i];
    kp.o_stride[i] = params.o.stride[i];
    kp.is_stride[i] = params.initial_state.stride[i];
    kp.fs_stride[i] = params.final_state.stride[i];
  }
  kp.s = params.s;
  kp.scale = params.scale;
  kp.initial_state = static_cast<const float*>(params.initial_state.data);
  kp.final_state = static_cast<float*>(params.final_state.data);
  kp.workspace = static_cast<float*>(params.workspace);
  kp.b = shape.b;
  kp.h = shape.h;
  kp.n = shape.n;
  kp.segments = plan.segments;
  kp.segment_len = plan.segment_len;
  return kp;
}

void launch_forward(const lightning_fwd_params_t& params,
                    const Shape& shape,
                    const ForwardPlan& plan,
                    Stream stream) {
  const FwdKernelParams kp = make_fwd_kernel_params(params, shape, plan);
  dispatch_dtype(params.q.dtype, [&](auto kind) {
    dispatch_head_dim(shape.d, [&](auto d) {
      dispatch_head_dim(shape.e, [&](auto e) {
        constexpr int kD = decltype(d)::value;
        constexpr int kE = decltype(e)::value;
        constexpr ElementKind kKind = decltype(kind)::value;
        if constexpr (kKind == ElementKind::kBF16) {
          run_forward<__nv_bfloat16, kD, kE>(kp, shape, stream);
        } else if constexpr (kKind == ElementKind::kFP16) {
          run_forward<__half, kD, kE>(kp, shape, stream);
        } else {
          run_forward_fp32<kD, kE>(kp, shape, stream);
        }
      });
    });
  });
}

void launch_backward(const lightning_bwd_params_t&, const Shape&, const ForwardPlan&, Stream) {
  throw NotBuilt("lightning: the backward kernel is not implemented yet (issue 5)");
}

}  // namespace lightning::detail
