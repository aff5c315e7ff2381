// lightning::gpu: the device infrastructure every tool shares (references, bench, tests).
//
//   - device queries that never throw when there is no GPU (device_count() == 0 then);
//   - a process-wide tracking allocator (current and peak bytes) and a move-only RAII buffer over
//     it, so every tool can report the peak device memory of what it ran, and an allocation that
//     cannot be satisfied surfaces as lightning::OutOfMemory with the process still usable;
//   - a seeded, launch-configuration-independent random fill on the device;
//   - host <-> device copies of strided [B, H, N, D] views in any storage dtype, through double.
//
// Host-only (no device code); includes the CUDA runtime API for cudaStream_t.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include <lightning/lightning.h>

namespace lightning::gpu {

// Number of CUDA devices; 0 when there is none, no driver, or the runtime fails. Never throws.
int device_count() noexcept;
bool has_device() noexcept;

inline constexpr int kCurrentDevice = -1;

struct DeviceInfo {
  int index = 0;
  std::string name;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  std::size_t l2_bytes = 0;
  std::size_t total_bytes = 0;  // device memory
  std::size_t free_bytes = 0;   // at the time of the query
  int sm_clock_khz = 0;         // the maximum (boost) SM clock
  int mem_clock_khz = 0;        // the maximum memory clock
  int mem_bus_width_bits = 0;
  // 2 (double data rate) * mem_clock * bus width / 8: the datasheet-style peak, not a measurement.
  double peak_bandwidth_bytes_per_s = 0;
  int driver_version = 0;  // e.g. 13000 for CUDA 13.0
  int runtime_version = 0;
};

// Properties of `device` (kCurrentDevice: the calling thread's current device). Throws CudaError.
DeviceInfo device_info(int device = kCurrentDevice);

// The SM clock of the current device right now, in MHz, measured (NVML is not a dependency): one
// thread spins for about 2 ms of %globaltimer (nanoseconds) and counts clock64() cycles over the
// same interval. The GPU is busy during the measurement, so this is the clock under (light) load,
// the one a throttled or capped device runs at; it synchronizes the device. Throws CudaError.
int current_sm_clock_mhz();

// Every device allocation of the references, the bench and the tests goes through this, so
// current and peak bytes are the tools' whole footprint (cuBLAS' own small workspace excepted).
// Thread-safe.
class TrackingAllocator {
 public:
  static TrackingAllocator& instance();

  // cudaMalloc `bytes` (0 gives nullptr). Throws lightning::OutOfMemory (after clearing the error
  // from the runtime) when the device cannot hold them, CudaError on any other failure.
  void* allocate(std::size_t bytes);
  // cudaFree a pointer from allocate() (nullptr is a no-op). Never throws.
  void deallocate(void* ptr) noexcept;

  std::size_t current_bytes() const;
  std::size_t peak_bytes() const;
  // Peak := current.
  void reset_peak();

  TrackingAllocator(const TrackingAllocator&) = delete;
  TrackingAllocator& operator=(const TrackingAllocator&) = delete;

 private:
  TrackingAllocator() = default;
  mutable std::mutex mutex_;
  std::unordered_map<void*, std::size_t> sizes_;
  std::size_t current_ = 0;
  std::size_t peak_ = 0;
};

// A device allocation owned by one object, through the TrackingAllocator. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(data_);
  }
  // Free now (the buffer becomes empty).
  void reset() noexcept;
  // cudaMemsetAsync(0) of the whole buffer on `stream`.
  void zero(cudaStream_t stream = nullptr);

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// `count` contiguous elements of `dtype` at `data`, element i = lo + (hi - lo) * u_i with u_i in
// [0, 1) a hash of (seed, i) (24 random bits), rounded to nearest in the dtype. The values depend
// only on (seed, i): not on the launch configuration, the stream or the device.
void fill_uniform(void* data,
                  lightning_dtype_t dtype,
                  std::int64_t count,
                  std::uint64_t seed,
                  float lo,
                  float hi,
                  cudaStream_t stream = nullptr);
// `count` contiguous elements of `dtype` set to `value` (rounded to the dtype; NaN and inf kept):
// constants, NaN poisoning of outputs.
void fill_value(void* data,
                lightning_dtype_t dtype,
                std::int64_t count,
                float value,
                cudaStream_t stream = nullptr);

// The logical [B, H, N, D] contents of a device strided view, in logical (row-major) order, as
// double. Synchronous (legacy default stream semantics: it waits for earlier work on blocking
// streams).
std::vector<double> to_host_double(const lightning_tensor_t& t);
// Write `values` (logical row-major order, numel(t) of them) into the device view, each rounded to
// nearest in t's dtype. Only the view's elements change: gaps between rows of a strided view are
// read and written back unchanged. Synchronous. Throws std::invalid_argument on a size mismatch.
void from_host_double(const lightning_tensor_t& t, const std::vector<double>& values);

// Host conversions to and from storage bits, round to nearest even (NaN stays NaN, overflow goes
// to inf): the same rounding the device fill and stores use.
std::uint16_t float_to_bf16_bits(float x);
float bf16_bits_to_float(std::uint16_t bits);
std::uint16_t float_to_fp16_bits(float x);
float fp16_bits_to_float(std::uint16_t bits);

}  // namespace lightning::gpu
