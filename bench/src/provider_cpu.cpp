// The CPU providers: the Eigen references of lightning_reference_cpu in float32 with outputs
// stored in the sweep's dtype, as a GPU kernel stores them. They let the whole tool (and CI) run
// without a GPU.
#include <lightning/reference/cpu.h>
#include <lightning/reference/tolerance.h>

#include "model.h"
#include "provider.h"

namespace lightning::bench {

std::uint64_t seed_for_length(std::uint64_t seed, std::int64_t n) {
  // splitmix64 of (seed, n): decorrelated streams per length, equal for every provider.
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(n) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

std::vector<double> rows(const std::vector<float>& x,
                         std::int64_t bh,
                         std::int64_t n,
                         std::int64_t width) {
  const auto first = x.begin() + bh * n * width;
  return std::vector<double>(first, first + n * width);
}

class CpuInstance final : public Instance {
 public:
  CpuInstance(const ProblemSpec& spec, Mode mode, bool softmax) : spec_(spec), softmax_(softmax) {
    std::vector<float> s(spec.slopes.begin(), spec.slopes.end());
    p_ = ref::random_problem<float>(spec.b, spec.h, spec.n, spec.d, spec.e, s, false, spec.seed);
    p_.scale = spec.scale;
    if (spec.dtype != DType::kFP32) {
      store_ = [dt = to_c(spec.dtype)](float x) {
        return static_cast<float>(ref::round_to(dt, x));
      };
      for (auto* t : {&p_.q, &p_.k, &p_.v}) {
        for (float& x : *t) x = store_(x);
      }
    }
    if (has_backward(mode)) {
      dout_ = ref::random_uniform<float>(
          static_cast<std::size_t>(spec.b * spec.h * spec.n * spec.e), spec.seed + 4);
      if (store_) {
        for (float& x : dout_) x = store_(x);
      }
    }
  }

  void run(Mode mode) override {
    if (has_forward(mode)) {
      fwd_ =
          softmax_ ? ref::softmax_forward<float>(p_) : ref::blocked_forward<float>(p_, kModelBlock);
      store(fwd_.o);
    }
    if (has_backward(mode)) {
      grad_ = softmax_ ? ref::softmax_backward<float>(p_, dout_)
                       : ref::blocked_backward<float>(p_, dout_, {}, kModelBlock);
      store(grad_.dq);
      store(grad_.dk);
      store(grad_.dv);
    }
  }

  HeadInputs read_inputs(std::int64_t b, std::int64_t h) override {
    const std::int64_t bh = b * spec_.h + h;
    HeadInputs in;
    in.q = rows(p_.q, bh, spec_.n, spec_.d);
    in.k = rows(p_.k, bh, spec_.n, spec_.d);
    in.v = rows(p_.v, bh, spec_.n, spec_.e);
    if (!dout_.empty()) in.dout = rows(dout_, bh, spec_.n, spec_.e);
    return in;
  }

  HeadOutputs read_outputs(std::int64_t b, std::int64_t h, Mode mode) override {
    const std::int64_t bh = b * spec_.h + h;
    HeadOutputs out;
    if (has_forward(mode)) out.o = rows(fwd_.o, bh, spec_.n, spec_.e);
    if (has_backward(mode)) {
      out.dq = rows(grad_.dq, bh, spec_.n, spec_.d);
      out.dk = rows(grad_.dk, bh, spec_.n, spec_.d);
      out.dv = rows(grad_.dv, bh, spec_.n, spec_.e);
    }
    return out;
  }

  std::int64_t host_bytes() const override {
    std::size_t elems = p_.q.size() + p_.k.size() + p_.v.size() + dout_.size() + fwd_.o.size() +
                        fwd_.final_state.size() + grad_.dq.size() + grad_.dk.size() +
                        grad_.dv.size() + grad_.dinitial_state.size();
    return static_cast<std::int64_t>(elems * sizeof(float));
  }

  const char* input_source() const override { return "host-random"; }

 private:
  void store(std::vector<float>& x) const {
    if (!store_) return;
    for (float& v : x) v = store_(v);
  }

  ProblemSpec spec_;
  bool softmax_;
  ref::Problem<float> p_;
  std::vector<float> dout_;
  ref::Forward<float> fwd_;
  ref::Gradients<float> grad_;
  ref::RoundFn<float> store_;
};

class CpuProvider final : public Provider {
 public:
  explicit CpuProvider(const ProviderInfo& info) : info_(info) {}
  const ProviderInfo& info() const override { return info_; }
  std::unique_ptr<Instance> prepare(const ProblemSpec& spec, Mode mode) override {
    return std::make_unique<CpuInstance>(spec, mode, info_.family == Family::kSoftmax);
  }

 private:
  const ProviderInfo& info_;
};

}  // namespace

std::unique_ptr<Provider> make_cpu_provider(const std::string& name) {
  const ProviderInfo& info = find_provider(name);
  if (info.gpu) return nullptr;
  return std::make_unique<CpuProvider>(info);
}

}  // namespace lightning::bench
