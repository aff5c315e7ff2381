// The GPU providers: the production kernels and the GPU references, through the same params
// structs. Every buffer of a point comes from the tracking allocator (lightning::gpu), so the
// point's peak device memory is known, and a point that cannot fit throws OutOfMemory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <cuda_runtime_api.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#include "gpu_internal.h"

namespace lightning::bench {

lightning_tensor_t head_view(const lightning_tensor_t& t, std::int64_t b, std::int64_t h) {
  lightning_tensor_t v = t;
  const std::int64_t offset = b * t.stride[0] + h * t.stride[1];
  v.data = static_cast<char*>(t.data) + offset * static_cast<std::int64_t>(dtype_size(t.dtype));
  v.shape[0] = 1;
  v.shape[1] = 1;
  return v;
}

namespace {

enum class Kind { kLightning, kSoftmax, kCumsum, kRecurrent };

Kind kind_of(const std::string& name) {
  if (name == "lightning") return Kind::kLightning;
  if (name == "softmax-naive") return Kind::kSoftmax;
  if (name == "cumsum-linear") return Kind::kCumsum;
  return Kind::kRecurrent;
}

class GpuInstance final : public Instance {
 public:
  GpuInstance(Kind kind, const ProblemSpec& spec, Mode mode, cudaStream_t stream)
      : kind_(kind), spec_(spec), stream_(stream) {
    const lightning_dtype_t dt = to_c(spec.dtype);
    const std::size_t es = dtype_size(dt);
    const std::int64_t bhn = spec.b * spec.h * spec.n;
    const std::size_t qk_bytes = static_cast<std::size_t>(bhn * spec.d) * es;
    const std::size_t ve_bytes = static_cast<std::size_t>(bhn * spec.e) * es;
    const bool fwd = has_forward(mode), bwd = has_backward(mode);

    // Describe everything first (null data), so the sizes of workspace and scratch are known
    // and a point that cannot fit is refused before anything is allocated.
    auto tensor = [&](void* data, std::int64_t width) {
      return make_tensor(data, spec.dtype, spec.layout, spec.b, spec.h, spec.n, width);
    };
    std::size_t need = 2 * qk_bytes + ve_bytes + sizeof(float) * static_cast<std::size_t>(spec.h);
    if (fwd) need += ve_bytes;
    if (bwd) need += ve_bytes + 2 * qk_bytes + ve_bytes;
    fill_params(tensor, nullptr);
    std::size_t scratch = 0;
    if (fwd) scratch = std::max(scratch, scratch_bytes(true));
    if (bwd) scratch = std::max(scratch, scratch_bytes(false));
    std::size_t free_bytes = 0, total_bytes = 0;
    LIGHTNING_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (need + scratch > free_bytes) {
      throw OutOfMemory(cudaErrorMemoryAllocation,
                        "needs " + std::to_string(need) + " bytes of buffers + " +
                            std::to_string(scratch) + " bytes of scratch, " +
                            std::to_string(free_bytes) + " bytes free",
                        need + scratch);
    }

    q_ = gpu::DeviceBuffer(qk_bytes);
    k_ = gpu::DeviceBuffer(qk_bytes);
    v_ = gpu::DeviceBuffer(ve_bytes);
    s_ = gpu::DeviceBuffer(sizeof(float) * static_cast<std::size_t>(spec.h));
    if (fwd) o_ = gpu::DeviceBuffer(ve_bytes);
    if (bwd) {
      dout_ = gpu::DeviceBuffer(ve_bytes);
      dq_ = gpu::DeviceBuffer(qk_bytes);
      dk_ = gpu::DeviceBuffer(qk_bytes);
      dv_ = gpu::DeviceBuffer(ve_bytes);
    }
    fill_params(tensor, this);
    if (kind_ == Kind::kLightning) {
      if (fwd) {
        fwd_ws_ = gpu::DeviceBuffer(forward_workspace_size(fp_));
        fp_.workspace = fwd_ws_.data();
        fp_.workspace_bytes = fwd_ws_.bytes();
      }
      if (bwd) {
        bwd_ws_ = gpu::DeviceBuffer(backward_workspace_size(bp_));
        bp_.workspace = bwd_ws_.data();
        bp_.workspace_bytes = bwd_ws_.bytes();
      }
    }

    // Inputs from (seed, tensor): equal at one length for every provider. Outputs start as NaN,
    // so an element a kernel never writes cannot pass verification.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    gpu::fill_uniform(q_.data(), dt, bhn * spec.d, spec.seed + 1, -1.0f, 1.0f, stream_);
    gpu::fill_uniform(k_.data(), dt, bhn * spec.d, spec.seed + 2, -1.0f, 1.0f, stream_);
    gpu::fill_uniform(v_.data(), dt, bhn * spec.e, spec.seed + 3, -1.0f, 1.0f, stream_);
    if (fwd) gpu::fill_value(o_.data(), dt, bhn * spec.e, nan, stream_);
    if (bwd) {
      gpu::fill_uniform(dout_.data(), dt, bhn * spec.e, spec.seed + 4, -1.0f, 1.0f, stream_);
      gpu::fill_value(dq_.data(), dt, bhn * spec.d, nan, stream_);
      gpu::fill_value(dk_.data(), dt, bhn * spec.d, nan, stream_);
      gpu::fill_value(dv_.data(), dt, bhn * spec.e, nan, stream_);
    }
    validate_slopes(spec.slopes.data(), spec.h);  // once here; the calls skip the check
    LIGHTNING_CUDA_CHECK(cudaMemcpyAsync(s_.data(), spec.slopes.data(), s_.bytes(),
                                         cudaMemcpyHostToDevice, stream_));
    LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void run(Mode mode) override {
    if (has_forward(mode)) {
      switch (kind_) {
        case Kind::kLightning:
          lightning::forward(fp_, stream_);
          break;
        case Kind::kSoftmax:
          ref::gpu::softmax_forward(fp_, stream_);
          break;
        case Kind::kCumsum:
          ref::gpu::cumsum_forward(fp_, stream_);
          break;
        case Kind::kRecurrent:
          ref::gpu::recurrent_forward(fp_, stream_);
          break;
      }
    }
    if (has_backward(mode)) {
      switch (kind_) {
        case Kind::kLightning:
          lightning::backward(bp_, stream_);
          break;
        case Kind::kSoftmax:
          ref::gpu::softmax_backward(bp_, stream_);
          break;
        case Kind::kCumsum:
          ref::gpu::cumsum_backward(bp_, stream_);
          break;
        case Kind::kRecurrent:
          ref::gpu::recurrent_backward(bp_, stream_);
          break;
      }
    }
  }

  HeadInputs read_inputs(std::int64_t b, std::int64_t h) override {
    LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_));
    HeadInputs in;
    in.q = gpu::to_host_double(head_view(fp_.q, b, h));
    in.k = gpu::to_host_double(head_view(fp_.k, b, h));
    in.v = gpu::to_host_double(head_view(fp_.v, b, h));
    if (dout_.data()) in.dout = gpu::to_host_double(head_view(bp_.dout, b, h));
    return in;
  }

  HeadOutputs read_outputs(std::int64_t b, std::int64_t h, Mode mode) override {
    LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_));
    HeadOutputs out;
    if (has_forward(mode)) out.o = gpu::to_host_double(head_view(fp_.o, b, h));
    if (has_backward(mode)) {
      out.dq = gpu::to_host_double(head_view(bp_.dq, b, h));
      out.dk = gpu::to_host_double(head_view(bp_.dk, b, h));
      out.dv = gpu::to_host_double(head_view(bp_.dv, b, h));
    }
    return out;
  }

  const char* input_source() const override { return "device-fill"; }

 private:
  // With self == nullptr the pointers are a placeholder (aligned, never dereferenced): the size
  // queries validate the params, and validation wants non-null, aligned data.
  template <class MakeTensor>
  void fill_params(MakeTensor&& tensor, const GpuInstance* self) {
    void* const placeholder = reinterpret_cast<void*>(std::uintptr_t{1} << 20);
    auto ptr = [self, placeholder](const gpu::DeviceBuffer& b) {
      return self ? b.data() : placeholder;
    };
    fp_ = ForwardParams();
    fp_.q = tensor(ptr(q_), spec_.d);
    fp_.k = tensor(ptr(k_), spec_.d);
    fp_.v = tensor(ptr(v_), spec_.e);
    fp_.o = tensor(ptr(o_), spec_.e);
    fp_.s = self ? s_.as<float>() : static_cast<const float*>(placeholder);
    fp_.scale = spec_.scale;
    fp_.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
    bp_ = BackwardParams();
    bp_.q = fp_.q;
    bp_.k = fp_.k;
    bp_.v = fp_.v;
    bp_.dout = tensor(ptr(dout_), spec_.e);
    bp_.dq = tensor(ptr(dq_), spec_.d);
    bp_.dk = tensor(ptr(dk_), spec_.d);
    bp_.dv = tensor(ptr(dv_), spec_.e);
    bp_.s = fp_.s;
    bp_.scale = spec_.scale;
    bp_.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
  }

  // The references' scratch for these shapes (their own size functions validate shapes only).
  std::size_t scratch_bytes(bool forward) const {
    switch (kind_) {
      case Kind::kSoftmax:
        return forward ? ref::gpu::softmax_forward_scratch_bytes(fp_)
                       : ref::gpu::softmax_backward_scratch_bytes(bp_);
      case Kind::kCumsum:
        return forward ? ref::gpu::cumsum_forward_scratch_bytes(fp_)
                       : ref::gpu::cumsum_backward_scratch_bytes(bp_);
      default:
        return 0;
    }
  }

  Kind kind_;
  ProblemSpec spec_;
  cudaStream_t stream_;
  gpu::DeviceBuffer q_, k_, v_, s_, o_, dout_, dq_, dk_, dv_, fwd_ws_, bwd_ws_;
  ForwardParams fp_;
  BackwardParams bp_;
};

class GpuProvider final : public Provider {
 public:
  GpuProvider(const ProviderInfo& info, cudaStream_t stream) : info_(info), stream_(stream) {}
  const ProviderInfo& info() const override { return info_; }
  std::unique_ptr<Instance> prepare(const ProblemSpec& spec, Mode mode) override {
    return std::make_unique<GpuInstance>(kind_of(info_.name), spec, mode, stream_);
  }

 private:
  const ProviderInfo& info_;
  cudaStream_t stream_;
};

}  // namespace

std::unique_ptr<Provider> make_gpu_provider(const std::string& name, cudaStream_t stream) {
  const ProviderInfo& info = find_provider(name);
  if (!info.gpu) return nullptr;
  return std::make_unique<GpuProvider>(info, stream);
}

}  // namespace lightning::bench
