// Host side of the device infrastructure: queries, the tracking allocator, buffers, strided
// host <-> device copies and the host storage conversions.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/reference/device.h>

namespace lightning::gpu {

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the error, report none
    return 0;
  }
  return count;
}

bool has_device() noexcept {
  return device_count() > 0;
}

namespace {

int resolve_device(int device) {
  if (device != kCurrentDevice) return device;
  int current = 0;
  LIGHTNING_CUDA_CHECK(cudaGetDevice(&current));
  return current;
}

int attribute(cudaDeviceAttr attr, int device) {
  int value = 0;
  LIGHTNING_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

// Makes `device` current for its lifetime, then restores the previous one.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    LIGHTNING_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) LIGHTNING_CUDA_CHECK(cudaSetDevice(device));
  }
  ~ScopedDevice() { cudaSetDevice(previous_); }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace

DeviceInfo device_info(int device) {
  DeviceInfo info;
  info.index = resolve_device(device);
  cudaDeviceProp prop{};
  LIGHTNING_CUDA_CHECK(cudaGetDeviceProperties(&prop, info.index));
  info.name = prop.name;
  // Clocks and bus width through attributes: CUDA 13 dropped them from cudaDeviceProp.
  info.sm_count = attribute(cudaDevAttrMultiProcessorCount, info.index);
  info.cc_major = attribute(cudaDevAttrComputeCapabilityMajor, info.index);
  info.cc_minor = attribute(cudaDevAttrComputeCapabilityMinor, info.index);
  info.l2_bytes = static_cast<std::size_t>(attribute(cudaDevAttrL2CacheSize, info.index));
  info.sm_clock_khz = attribute(cudaDevAttrClockRate, info.index);
  info.mem_clock_khz = attribute(cudaDevAttrMemoryClockRate, info.index);
  info.mem_bus_width_bits = attribute(cudaDevAttrGlobalMemoryBusWidth, info.index);
  info.peak_bandwidth_bytes_per_s = 2.0 * static_cast<double>(info.mem_clock_khz) * 1e3 *
                                    static_cast<double>(info.mem_bus_width_bits) / 8.0;
  {
    ScopedDevice scoped(info.index);
    LIGHTNING_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  }
  LIGHTNING_CUDA_CHECK(cudaDriverGetVersion(&info.driver_version));
  LIGHTNING_CUDA_CHECK(cudaRuntimeGetVersion(&info.runtime_version));
  return info;
}

// ---------------------------------------------------------------------------------------------
// Tracking allocator and buffers.

TrackingAllocator& TrackingAllocator::instance() {
  // Constructed on first use (never during static initialisation), never destroyed: buffers freed
  // from other static destructors must still find it.
  static TrackingAllocator* allocator = new TrackingAllocator();
  return *allocator;
}

void* TrackingAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear it, so the next call does not see it
    std::string what =
        "lightning::gpu::TrackingAllocator: cudaMalloc of " + std::to_string(bytes) + " bytes (" +
        std::to_string(static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0)) +
        " GiB) failed: " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status) +
        " (tracked in use: " + std::to_string(current_bytes()) + " bytes)";
    if (status == cudaErrorMemoryAllocation) {
      throw OutOfMemory(static_cast<int>(status), what, bytes);
    }
    throw CudaError(static_cast<int>(status), what);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  sizes_[ptr] = bytes;
  current_ += bytes;
  peak_ = std::max(peak_, current_);
  return ptr;
}

void TrackingAllocator::deallocate(void* ptr) noexcept {
  if (ptr == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      current_ -= it->second;
      sizes_.erase(it);
    }
  }
  cudaFree(ptr);  // errors here (a context torn down at exit) cannot be acted on
}

std::size_t TrackingAllocator::current_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

std::size_t TrackingAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

void TrackingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = current_;
}

DeviceBuffer::DeviceBuffer(std::size_t bytes)
    : data_(TrackingAllocator::instance().allocate(bytes)), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() {
  reset();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reset() noexcept {
  TrackingAllocator::instance().deallocate(data_);
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::zero(cudaStream_t stream) {
  if (bytes_ != 0) LIGHTNING_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes_, stream));
}

// ---------------------------------------------------------------------------------------------
// Host storage conversions.

std::uint16_t float_to_bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even; overflows carry into inf
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

std::uint16_t float_to_fp16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if (std::isnan(x)) return static_cast<std::uint16_t>(sign | 0x7e00u);
  const float ax = std::fabs(x);
  if (ax >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504
  // Round to the fp16 grid: 11 significant bits for normals (ax >= 2^-14), a fixed quantum of
  // 2^-24 below. Scaling by powers of two is exact, nearbyint rounds to nearest even.
  int exp = 0;
  std::frexp(ax, &exp);  // ax = m * 2^exp, m in [0.5, 1)
  const float quantum = std::ldexp(1.0f, std::max(exp, -13) - 11);
  const float r = std::nearbyint(ax / quantum) * quantum;
  if (r >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (r == 0.0f) return sign;
  int r_exp = 0;
  const float m = std::frexp(r, &r_exp);  // r = m * 2^r_exp, m in [0.5, 1)
  if (r_exp >= -13) {                     // normal: r = 1.f * 2^(r_exp - 1)
    const auto biased = static_cast<std::uint32_t>(r_exp - 1 + 15);
    const auto mantissa = static_cast<std::uint32_t>((m * 2.0f - 1.0f) * 1024.0f);
    return static_cast<std::uint16_t>(sign | (biased << 10) | mantissa);
  }
  return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(r / std::ldexp(1.0f, -24)));
}

float fp16_bits_to_float(std::uint16_t bits) {
  const bool negative = (bits & 0x8000u) != 0;
  const std::uint32_t biased = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  float value;
  if (biased == 0x1f) {
    value = mantissa ? NAN : INFINITY;
  } else if (biased == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(biased) - 25);
  }
  return negative ? -value : value;
}

// ---------------------------------------------------------------------------------------------
// Strided host <-> device copies.

namespace {

// Elements from the view's base to one past its last element.
std::int64_t span_elements(const lightning_tensor_t& t) {
  std::int64_t span = 1;
  for (int i = 0; i < 4; ++i) {
    if (t.shape[i] < 1) {
      throw std::invalid_argument("lightning::gpu: view with an empty axis " + std::to_string(i));
    }
    if (t.stride[i] < 0) {
      throw std::invalid_argument("lightning::gpu: view with a negative stride on axis " +
                                  std::to_string(i));
    }
    span += (t.shape[i] - 1) * t.stride[i];
  }
  return span;
}

// Element codecs of the storage dtypes, chosen once per copy (not per element).
struct Bf16Codec {
  static constexpr std::size_t kSize = 2;
  static double load(const std::uint8_t* p) {
    std::uint16_t bits;
    std::memcpy(&bits, p, 2);
    return bf16_bits_to_float(bits);
  }
  static void store(std::uint8_t* p, double value) {
    const std::uint16_t bits = float_to_bf16_bits(static_cast<float>(value));
    std::memcpy(p, &bits, 2);
  }
};

struct Fp16Codec {
  static constexpr std::size_t kSize = 2;
  static double load(const std::uint8_t* p) {
    // A table of all 65536 values: reads of 10^9 elements stay at memory speed.
    static const std::vector<float> table = [] {
      std::vector<float> values(65536);
      for (std::uint32_t i = 0; i < 65536; ++i) {
        values[i] = fp16_bits_to_float(static_cast<std::uint16_t>(i));
      }
      return values;
    }();
    std::uint16_t bits;
    std::memcpy(&bits, p, 2);
    return table[bits];
  }
  static void store(std::uint8_t* p, double value) {
    const std::uint16_t bits = float_to_fp16_bits(static_cast<float>(value));
    std::memcpy(p, &bits, 2);
  }
};

struct Fp32Codec {
  static constexpr std::size_t kSize = 4;
  static double load(const std::uint8_t* p) {
    float x;
    std::memcpy(&x, p, 4);
    return x;
  }
  static void store(std::uint8_t* p, double value) {
    const auto x = static_cast<float>(value);
    std::memcpy(p, &x, 4);
  }
};

template <class F>
void dispatch_codec(lightning_dtype_t dtype, F&& f) {
  switch (dtype) {
    case LIGHTNING_BF16:
      return f(Bf16Codec{});
    case LIGHTNING_FP16:
      return f(Fp16Codec{});
    case LIGHTNING_FP32:
      return f(Fp32Codec{});
  }
  throw std::invalid_argument("lightning::gpu: unknown dtype code " +
                              std::to_string(static_cast<int>(dtype)));
}

// Visit every logical index in row-major order with its element offset.
template <class F>
void for_each_element(const lightning_tensor_t& t, F&& f) {
  std::int64_t logical = 0;
  for (std::int64_t i0 = 0; i0 < t.shape[0]; ++i0) {
    for (std::int64_t i1 = 0; i1 < t.shape[1]; ++i1) {
      for (std::int64_t i2 = 0; i2 < t.shape[2]; ++i2) {
        const std::int64_t row = i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2];
        for (std::int64_t i3 = 0; i3 < t.shape[3]; ++i3) f(logical++, row + i3 * t.stride[3]);
      }
    }
  }
}

std::vector<std::uint8_t> copy_span_to_host(const lightning_tensor_t& t, std::int64_t span) {
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(span) * dtype_size(t.dtype));
  LIGHTNING_CUDA_CHECK(cudaMemcpy(raw.data(), t.data, raw.size(), cudaMemcpyDeviceToHost));
  return raw;
}

}  // namespace

std::vector<double> to_host_double(const lightning_tensor_t& t) {
  if (t.data == nullptr) throw std::invalid_argument("lightning::gpu::to_host_double: null view");
  const std::int64_t span = span_elements(t);
  const std::vector<std::uint8_t> raw = copy_span_to_host(t, span);
  std::vector<double> out(static_cast<std::size_t>(numel(t)));
  dispatch_codec(t.dtype, [&](auto codec) {
    using Codec = decltype(codec);
    for_each_element(t, [&](std::int64_t logical, std::int64_t offset) {
      out[static_cast<std::size_t>(logical)] = Codec::load(raw.data() + offset * Codec::kSize);
    });
  });
  return out;
}

void from_host_double(const lightning_tensor_t& t, const std::vector<double>& values) {
  if (t.data == nullptr) throw std::invalid_argument("lightning::gpu::from_host_double: null view");
  if (static_cast<std::int64_t>(values.size()) != numel(t)) {
    throw std::invalid_argument(
        "lightning::gpu::from_host_double: " + std::to_string(values.size()) +
        " values for a view of " + std::to_string(numel(t)) + " elements");
  }
  const std::int64_t span = span_elements(t);
  // Read-modify-write of the whole span, so elements between the view's rows keep their values.
  std::vector<std::uint8_t> raw = copy_span_to_host(t, span);
  dispatch_codec(t.dtype, [&](auto codec) {
    using Codec = decltype(codec);
    for_each_element(t, [&](std::int64_t logical, std::int64_t offset) {
      Codec::store(raw.data() + offset * Codec::kSize, values[static_cast<std::size_t>(logical)]);
    });
  });
  LIGHTNING_CUDA_CHECK(cudaMemcpy(t.data, raw.data(), raw.size(), cudaMemcpyHostToDevice));
}

}  // namespace lightning::gpu
