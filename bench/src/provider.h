// lightning-bench: providers. A provider turns a point's problem into an Instance that owns every
// buffer of the point (device buffers through the tracking allocator) and runs one pass on demand.
// The harness knows the kernels only through the public API (lightning/api.h) and the references'
// headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <lightning/api.h>

#include "options.h"

namespace lightning::bench {

// The problem of one point.
struct ProblemSpec {
  std::int64_t b = 1, h = 1, n = 1, d = 64, e = 64;
  DType dtype = DType::kBF16;
  Layout layout = Layout::kBHND;
  std::vector<float> slopes;  // [h]
  float scale = 1.0f;
  std::uint64_t seed = 0;  // of this length's inputs: equal for every provider at this length
};

// The seed of the inputs at length n: the same for every provider and mode, so that the
// references computed for one length serve them all.
std::uint64_t seed_for_length(std::uint64_t seed, std::int64_t n);

// One (b, h) head's rows in logical order, as doubles holding the stored values.
struct HeadInputs {
  std::vector<double> q, k;  // [N, D]
  std::vector<double> v;     // [N, E]
  std::vector<double> dout;  // [N, E] (empty for a forward-only instance)
};
struct HeadOutputs {
  std::vector<double> o;       // [N, E] (forward modes)
  std::vector<double> dq, dk;  // [N, D] (backward modes)
  std::vector<double> dv;      // [N, E]
};

class Instance {
 public:
  virtual ~Instance() = default;
  // One pass. GPU: enqueued on the bench stream (asynchronous). CPU: computed before returning.
  virtual void run(Mode mode) = 0;
  // Synchronous host copies of one head (after run for outputs).
  virtual HeadInputs read_inputs(std::int64_t b, std::int64_t h) = 0;
  virtual HeadOutputs read_outputs(std::int64_t b, std::int64_t h, Mode mode) = 0;
  // Host bytes held (CPU providers); -1 for device providers (the tracking allocator knows).
  virtual std::int64_t host_bytes() const { return -1; }
  // Equal (seed, input_source) means equal inputs: "device-fill" or "host-random".
  virtual const char* input_source() const = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual const ProviderInfo& info() const = 0;
  // Allocate and fill everything `mode` needs. Throws lightning::OutOfMemory when it cannot fit,
  // lightning::NotBuilt without CUDA, anything else on other errors.
  virtual std::unique_ptr<Instance> prepare(const ProblemSpec& spec, Mode mode) = 0;
};

// cpu-lightning, cpu-softmax (nullptr for another name).
std::unique_ptr<Provider> make_cpu_provider(const std::string& name);

}  // namespace lightning::bench
