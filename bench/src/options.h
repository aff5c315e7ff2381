// lightning-bench: the parsed command line, the provider catalog and the names the tool uses.
// Host-only, no CUDA: the pure parts of the tool (CLI, plan, statistics, report) build everywhere
// and are unit tested in bench/tests.
#pragma once

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <lightning/api.h>

namespace lightning::bench {

// A command-line mistake. main prints what() as one line and exits 2.
class BadArgument : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Mode { kFwd, kBwd, kFwdBwd };
const char* mode_name(Mode mode);          // "fwd" | "bwd" | "fwdbwd"
Mode parse_mode(const std::string& name);  // throws BadArgument
inline bool has_forward(Mode m) {
  return m != Mode::kBwd;
}
inline bool has_backward(Mode m) {
  return m != Mode::kFwd;
}

enum class Timer { kEvents, kCupti };
const char* timer_name(Timer timer);  // "events" | "cupti"

// What a provider computes: selects the verification reference and the FLOP model.
enum class Family {
  kLinearBlocked,    // lightning attention, blocked intra/inter form (the production kernels)
  kLinearRecurrent,  // lightning attention, token recurrence or materialised cumsum (references)
  kSoftmax,          // causal softmax attention (the quadratic comparison point)
};
const char* family_name(Family f);

struct ProviderInfo {
  const char* name;
  bool gpu;
  Family family;
  const char* description;
};

// Every provider the tool knows, in the order sweeps run them.
const std::vector<ProviderInfo>& provider_catalog();
// The catalog entry for `name`; throws BadArgument listing the known names.
const ProviderInfo& find_provider(const std::string& name);

// The parsed and validated command line. Defaults are the standard sweep of DESIGN.md section 4;
// apply_cpu_defaults() swaps in the small CPU sweep where there is no GPU.
struct Options {
  // The problem.
  std::string seqlens_spec = "1k..128k";
  std::vector<std::int64_t> seqlens;  // ascending, unique
  std::int64_t tokens = 128 * 1024;   // token budget per step: B = tokens / N
  std::int64_t batch = 0;             // > 0: a fixed B instead of the token budget
  std::int64_t heads = 32;
  std::int64_t dim = 128;   // D
  std::int64_t vdim = 128;  // E
  DType dtype = DType::kBF16;
  Layout layout = Layout::kBHND;
  std::string decay = "alibi";  // alibi | none | a value of s >= 0 for every head
  float scale = 1.0f;
  std::vector<std::string> providers;
  std::vector<Mode> modes{Mode::kFwd, Mode::kBwd, Mode::kFwdBwd};

  // The measurement.
  bool warm = false;  // L2 left warm between samples (default: cleared, "cold")
  int min_samples = 10;
  int max_samples = 10000;
  double min_time_s = 0.2;  // of timed samples
  double noise = 0.005;     // target relative standard error of the median
  double timeout_s = 10;    // per point, wall clock, warm-up and verification excluded
  double throttle = 0.75;   // a sample whose SM clock is below this fraction of the max is dropped
  Timer timer = Timer::kEvents;
  bool profile = false;  // one sample per point, for Nsight
  int device = 0;
  bool list_devices = false;
  std::uint64_t seed = 20240520;
  double peak_bandwidth_gbps = 0;  // 0: the device's datasheet peak

  // Numerics.
  bool verify = false;
  int verify_heads = 2;             // (b, h) pairs checked per point; 0 = all
  double verify_budget_gflop = 60;  // CPU float64 work above which the GPU oracle is used

  // Output.
  std::string json_path;
  int repeat = 1;
  bool progress = true;  // on stderr, only when it is a terminal
  bool table = true;

  std::vector<std::string> argv;
  std::set<std::string> given;  // long names of the flags set on the command line
  bool cpu_defaults = false;    // apply_cpu_defaults() replaced some defaults

  bool was_given(const std::string& flag) const { return given.count(flag) > 0; }
};

// The small CPU sweep used where there is no GPU, for every size flag not given explicitly.
// Returns a one-line description of what it changed ("" when nothing).
std::string apply_cpu_defaults(Options& options);

// The default GPU provider list (every GPU provider).
std::vector<std::string> default_gpu_providers();

// Per-head slopes s_h for `decay` and `heads` (throws BadArgument on a bad decay).
std::vector<float> slopes_for(const std::string& decay, std::int64_t heads);

}  // namespace lightning::bench
