// lightning-bench: everything that needs the CUDA runtime, behind one interface, so the sweep
// loop builds without CUDA too (gpu_stub.cpp then answers "no GPU" with the reason).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine.h"
#include "options.h"
#include "provider.h"
#include "verify.h"

namespace lightning::bench {

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  virtual nlohmann::json device_json() const = 0;
  // Notes on the measurement setup (CUPTI availability, the L2 flush size, ...).
  virtual nlohmann::json timer_json() const = 0;
  virtual double peak_bandwidth_bytes_per_s() const = 0;
  virtual std::unique_ptr<Provider> make_provider(const std::string& name) = 0;
  virtual Engine& engine() = 0;
  // The GPU fp32 recurrence on a few heads (the verifier's long-sequence oracle); its name.
  virtual LinearOracle oracle() = 0;
  virtual std::string oracle_name() const = 0;
  // Tracking allocator.
  virtual std::int64_t current_bytes() const = 0;
  virtual std::int64_t peak_bytes() const = 0;
  virtual void reset_peak() = 0;
  virtual std::int64_t total_bytes() const = 0;
  // Wait for the bench stream.
  virtual void synchronize() = 0;
  // "" while the context is usable; else the sticky error that broke it.
  virtual std::string health_check() = 0;
};

// The backend for --device, or nullptr with `reason` set (no CUDA in this build, no device, a
// bad index, ...). Prints nothing.
std::unique_ptr<GpuBackend> make_gpu_backend(const Options& options, std::string* reason);

// The text of --list-devices.
std::string list_devices_text();

}  // namespace lightning::bench
