// lightning-bench: numerics of a point, DESIGN.md section 5 rules 1 and 2 (reference/cpu's
// tolerance.h), on a sample of (b, h) heads:
//   reference  float64 on the CPU (blocked form, block 64; softmax for softmax providers) of the
//              provider's own, already rounded, inputs, while its cost stays under
//              --verify-budget; beyond, for linear attention, the GPU fp32 sequential recurrence
//              (the long-sequence oracle) on the same heads; softmax beyond the budget is skipped;
//   baseline   the same algorithm in float32 with storage rounding of the intermediates
//              (ref::blocked_* with `round`) or, for softmax, float32 with rounded outputs.
// The references of one length are computed once and shared by every provider and mode there
// (their inputs come from the same seed; the verifier checks that they are equal).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "options.h"
#include "provider.h"
#include "result.h"

namespace lightning::bench {

// Linear attention on a few heads by another implementation (the GPU recurrence). Heads are
// independent: head i has slope slopes[i]; inputs hold q, k, v (and dout when `backward`).
using LinearOracle = std::function<std::vector<HeadOutputs>(const std::vector<HeadInputs>& heads,
                                                            const std::vector<float>& slopes,
                                                            float scale,
                                                            std::int64_t n,
                                                            std::int64_t d,
                                                            std::int64_t e,
                                                            bool forward,
                                                            bool backward)>;

// Up to `count` distinct (b, h) pairs (all when count is 0 or >= b*h): (0, 0) (the strongest ALiBi
// decay), (b-1, h-1) (the weakest), then seeded random ones.
std::vector<std::array<std::int64_t, 2>> choose_heads(std::int64_t b,
                                                      std::int64_t h,
                                                      int count,
                                                      std::uint64_t seed);

class Verifier {
 public:
  explicit Verifier(const Options& options);
  ~Verifier();
  void set_gpu_oracle(LinearOracle oracle, std::string name);

  // `instance` has just run `mode` once; its outputs are compared.
  Verification verify(Instance& instance, const ProblemSpec& spec, Family family, Mode mode);

 private:
  struct Entry;
  const Options& options_;
  LinearOracle oracle_;
  std::string oracle_name_;
  // The references of the last length seen, one for linear attention and one for softmax, so
  // the providers of one length (in any order) share them.
  std::unique_ptr<Entry> entries_[2];
};

}  // namespace lightning::bench
