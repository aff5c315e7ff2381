// The CUDA backend of lightning-bench: device selection and description, the bench stream, the
// GPU engine and providers, the tracking allocator's counters, and the GPU recurrence oracle.
#include "gpu_backend.h"

#include <cstdio>
#include <sstream>

#include <cuda_runtime_api.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>
#include <lightning/reference/gpu.h>

#include "gpu_internal.h"

namespace lightning::bench {

namespace {

std::string version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

nlohmann::json info_json(const gpu::DeviceInfo& d) {
  return {{"index", d.index},
          {"name", d.name},
          {"sm_count", d.sm_count},
          {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
          {"l2_bytes", d.l2_bytes},
          {"total_bytes", d.total_bytes},
          {"free_bytes", d.free_bytes},
          {"sm_clock_max_mhz", d.sm_clock_khz / 1000.0},
          {"mem_clock_max_mhz", d.mem_clock_khz / 1000.0},
          {"mem_bus_width_bits", d.mem_bus_width_bits},
          {"peak_bandwidth_gbps", d.peak_bandwidth_bytes_per_s / 1e9},
          {"driver_version", version_text(d.driver_version)},
          {"runtime_version", version_text(d.runtime_version)}};
}

// Concatenate the heads' rows of one tensor ([1, H', N, X] contiguous).
std::vector<double> gather(const std::vector<HeadInputs>& heads,
                           std::vector<double> HeadInputs::*field) {
  std::vector<double> all;
  for (const auto& h : heads) all.insert(all.end(), (h.*field).begin(), (h.*field).end());
  return all;
}

void scatter(const std::vector<double>& all,
             std::int64_t width,
             std::vector<HeadOutputs>& out,
             std::vector<double> HeadOutputs::*field) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto first = all.begin() + static_cast<std::int64_t>(i) * width;
    (out[i].*field).assign(first, first + width);
  }
}

class CudaBackend final : public GpuBackend {
 public:
  CudaBackend(const Options& options, const gpu::DeviceInfo& info) : info_(info) {
    LIGHTNING_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    engine_ = make_gpu_engine(stream_, info_, options, &setup_);
    peak_bandwidth_ = info_.peak_bandwidth_bytes_per_s;
  }
  ~CudaBackend() override {
    engine_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  nlohmann::json device_json() const override { return info_json(info_); }

  nlohmann::json timer_json() const override {
    return {{"timer", setup_.cupti ? "cupti" : "events"},
            {"note", setup_.note},
            {"l2_flush_bytes", setup_.flush_bytes},
            {"clock_sampling",
             "lightning::gpu::current_sm_clock_mhz after each sample (a 2 ms clock64 / "
             "globaltimer spin), against the device's maximum SM clock"}};
  }

  double peak_bandwidth_bytes_per_s() const override { return peak_bandwidth_; }

  std::unique_ptr<Provider> make_provider(const std::string& name) override {
    return make_gpu_provider(name, stream_);
  }

  Engine& engine() override { return *engine_; }

  std::string oracle_name() const override { return "gpu-fp32-recurrent"; }

  LinearOracle oracle() override {
    cudaStream_t stream = stream_;
    return [stream](const std::vector<HeadInputs>& heads, const std::vector<float>& slopes,
                    float scale, std::int64_t n, std::int64_t d, std::int64_t e, bool forward,
                    bool backward) {
      const std::int64_t nh = static_cast<std::int64_t>(heads.size());
      const std::size_t qk = static_cast<std::size_t>(nh * n * d) * sizeof(float);
      const std::size_t ve = static_cast<std::size_t>(nh * n * e) * sizeof(float);
      gpu::DeviceBuffer q(qk), k(qk), v(ve), s(sizeof(float) * slopes.size());
      auto tensor = [&](const gpu::DeviceBuffer& b, std::int64_t width) {
        return make_tensor(b.data(), DType::kFP32, Layout::kBHND, 1, nh, n, width);
      };
      gpu::from_host_double(tensor(q, d), gather(heads, &HeadInputs::q));
      gpu::from_host_double(tensor(k, d), gather(heads, &HeadInputs::k));
      gpu::from_host_double(tensor(v, e), gather(heads, &HeadInputs::v));
      LIGHTNING_CUDA_CHECK(cudaMemcpy(s.data(), slopes.data(), s.bytes(), cudaMemcpyHostToDevice));
      std::vector<HeadOutputs> out(heads.size());
      if (forward) {
        gpu::DeviceBuffer o(ve);
        ForwardParams p;
        p.q = tensor(q, d);
        p.k = tensor(k, d);
        p.v = tensor(v, e);
        p.o = tensor(o, e);
        p.s = s.as<float>();
        p.scale = scale;
        ref::gpu::recurrent_forward(p, stream);
        LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream));
        scatter(gpu::to_host_double(p.o), n * e, out, &HeadOutputs::o);
      }
      if (backward) {
        gpu::DeviceBuffer dout(ve), dq(qk), dk(qk), dv(ve);
        gpu::from_host_double(tensor(dout, e), gather(heads, &HeadInputs::dout));
        BackwardParams p;
        p.q = tensor(q, d);
        p.k = tensor(k, d);
        p.v = tensor(v, e);
        p.dout = tensor(dout, e);
        p.dq = tensor(dq, d);
        p.dk = tensor(dk, d);
        p.dv = tensor(dv, e);
        p.s = s.as<float>();
        p.scale = scale;
        ref::gpu::recurrent_backward(p, stream);
        LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream));
        scatter(gpu::to_host_double(p.dq), n * d, out, &HeadOutputs::dq);
        scatter(gpu::to_host_double(p.dk), n * d, out, &HeadOutputs::dk);
        scatter(gpu::to_host_double(p.dv), n * e, out, &HeadOutputs::dv);
      }
      return out;
    };
  }

  std::int64_t current_bytes() const override {
    return static_cast<std::int64_t>(gpu::TrackingAllocator::instance().current_bytes());
  }
  std::int64_t peak_bytes() const override {
    return static_cast<std::int64_t>(gpu::TrackingAllocator::instance().peak_bytes());
  }
  void reset_peak() override { gpu::TrackingAllocator::instance().reset_peak(); }
  std::int64_t total_bytes() const override { return static_cast<std::int64_t>(info_.total_bytes); }

  void synchronize() override { LIGHTNING_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  std::string health_check() override {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) return "";
    cudaGetLastError();  // clears a non-sticky error; a sticky one comes back below
    e = cudaDeviceSynchronize();
    if (e == cudaSuccess) return "";
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  }

 private:
  gpu::DeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Engine> engine_;
  GpuEngineSetup setup_;
  double peak_bandwidth_ = 0;
};

}  // namespace

std::unique_ptr<GpuBackend> make_gpu_backend(const Options& options, std::string* reason) {
  const int count = gpu::device_count();
  if (count == 0) {
    if (reason) *reason = "no CUDA device visible (or no driver)";
    return nullptr;
  }
  if (options.device >= count) {
    throw BadArgument("--device " + std::to_string(options.device) + ": only " +
                      std::to_string(count) + " CUDA device(s) (see --list-devices)");
  }
  try {
    LIGHTNING_CUDA_CHECK(cudaSetDevice(options.device));
    const gpu::DeviceInfo info = gpu::device_info(options.device);
    return std::make_unique<CudaBackend>(options, info);
  } catch (const std::exception& e) {
    if (reason)
      *reason =
          std::string("CUDA device ") + std::to_string(options.device) + " unusable: " + e.what();
    return nullptr;
  }
}

std::string list_devices_text() {
  const int count = gpu::device_count();
  if (count == 0) return "no CUDA devices visible (or no driver)\n";
  std::ostringstream os;
  for (int i = 0; i < count; ++i) {
    try {
      const auto d = gpu::device_info(i);
      char line[512];
      std::snprintf(line, sizeof line,
                    "%d: %s, compute capability %d.%d, %d SMs, %.1f GiB, L2 %.0f MiB, max SM "
                    "clock %d MHz, peak bandwidth %.0f GB/s, driver %s, runtime %s\n",
                    i, d.name.c_str(), d.cc_major, d.cc_minor, d.sm_count,
                    static_cast<double>(d.total_bytes) / (1 << 30),
                    static_cast<double>(d.l2_bytes) / (1 << 20), d.sm_clock_khz / 1000,
                    d.peak_bandwidth_bytes_per_s / 1e9, version_text(d.driver_version).c_str(),
                    version_text(d.runtime_version).c_str());
      os << line;
    } catch (const std::exception& e) {
      os << i << ": unusable: " << e.what() << "\n";
    }
  }
  return os.str();
}

}  // namespace lightning::bench
