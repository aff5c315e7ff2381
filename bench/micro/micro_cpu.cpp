// Micro-benchmarks of the CPU references (lightning_reference_cpu): the forms of lightning
// attention in float and double, and causal softmax, over a few lengths. JSON output with
// --benchmark_out=FILE --benchmark_out_format=json.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include <lightning/reference/cpu.h>

namespace {

constexpr std::int64_t kB = 1, kH = 2, kD = 64, kE = 64;
constexpr int kBlock = 64;

template <class Scalar>
lightning::ref::Problem<Scalar> problem(std::int64_t n) {
  std::vector<Scalar> s;
  for (double x : lightning::ref::alibi_slopes(kH)) s.push_back(static_cast<Scalar>(x));
  return lightning::ref::random_problem<Scalar>(kB, kH, n, kD, kE, s, false, 7);
}

void set_counters(benchmark::State& state, std::int64_t n) {
  state.SetItemsProcessed(state.iterations() * kB * n);  // tokens
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(kB * n), benchmark::Counter::kIsIterationInvariantRate);
}

template <class Scalar>
void BM_RefBlockedForward(benchmark::State& state) {
  const auto n = state.range(0);
  const auto p = problem<Scalar>(n);
  for (auto _ : state) benchmark::DoNotOptimize(lightning::ref::blocked_forward<Scalar>(p, kBlock));
  set_counters(state, n);
}

template <class Scalar>
void BM_RefBlockedBackward(benchmark::State& state) {
  const auto n = state.range(0);
  const auto p = problem<Scalar>(n);
  const auto dout =
      lightning::ref::random_uniform<Scalar>(static_cast<std::size_t>(kB * kH * n * kE), 9);
  for (auto _ : state) {
    benchmark::DoNotOptimize(lightning::ref::blocked_backward<Scalar>(p, dout, {}, kBlock));
  }
  set_counters(state, n);
}

template <class Scalar>
void BM_RefRecurrentForward(benchmark::State& state) {
  const auto n = state.range(0);
  const auto p = problem<Scalar>(n);
  for (auto _ : state) benchmark::DoNotOptimize(lightning::ref::recurrent_forward<Scalar>(p));
  set_counters(state, n);
}

template <class Scalar>
void BM_RefSoftmaxForward(benchmark::State& state) {
  const auto n = state.range(0);
  const auto p = problem<Scalar>(n);
  for (auto _ : state) benchmark::DoNotOptimize(lightning::ref::softmax_forward<Scalar>(p));
  set_counters(state, n);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_RefBlockedForward, float)
    ->RangeMultiplier(4)
    ->Range(256, 4096)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_RefBlockedForward, double)
    ->RangeMultiplier(4)
    ->Range(256, 4096)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_RefBlockedBackward, float)
    ->RangeMultiplier(4)
    ->Range(256, 4096)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_RefRecurrentForward, double)
    ->RangeMultiplier(4)
    ->Range(256, 4096)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_RefSoftmaxForward, float)
    ->RangeMultiplier(4)
    ->Range(256, 4096)
    ->Unit(benchmark::kMillisecond);
