// lightning-probe-chains: how fast one thread block walks one chain (one head's sequence), in
// isolation from the plan. The flatness analysis of kernels/README.md rests on two per-block
// rates: the local-state pass (K and V in, the state update only) and the output pass (the whole
// forward block), each timed with 32, 64 and 128 thread blocks resident at once. A rate that does
// not change with the number of blocks is bound by the thread block's own chain of work, not by
// memory.
//
//   lightning-probe-chains [--json PATH] [--repeats N]
//
// bf16, H = 32, D = E = 128, [B, H, N, D], alibi-like slopes; both passes are the library's
// kernels (forward.cuh), each with cp.async loads and with TMA loads (the library's output pass
// takes TMA, its local-state pass cp.async), launched directly with a hand-made split; and the
// output pass of the D = 128, E = 64 instantiation (one warpgroup per block) with TMA; and the
// library's output pass (TMA) compiled for 168 registers a thread instead of 255
// ("output_r168"): what its two warpgroups would keep if a third, holding a 128 x 128 fp32 state
// as its accumulator, shared the SM (65536 / 384 threads); and the warp-specialised output pass
// (src/forward_ws.cuh, "output_ws", each of its variants at 32 and 128 thread blocks), whose
// outputs are also compared bit for bit with the library's, and whose shipped order is run once
// more with its waits timed (kProfile: how much time its P warpgroup has to spare). Cold L2: a 256
// MiB buffer is rewritten before every sample. Exit 77 where there is no CUDA device.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include <nlohmann/json.hpp>

#include "forward.cuh"
#include "launch.h"

#ifndef LIGHTNING_PROBE_GIT_SHA
#define LIGHTNING_PROBE_GIT_SHA "unknown"
#endif

namespace {

using namespace lightning::detail;
using Element = __nv_bfloat16;
constexpr int kDim = 128;
constexpr std::int64_t kHeads = 32;
constexpr int kBlockN = 64;
using Traits = FwdTraits<Element, kDim, kDim>;
constexpr int kWsVariants = 5;

__global__ void fill_kernel(Element* x, std::int64_t count, std::uint32_t seed) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < count;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    x[i] = __float2bfloat16(static_cast<float>(h & 0xffff) / 32768.f - 1.f);
  }
}

struct Case {
  const char* pass;     // "local_state", "output", "output_e64" (D = 128, E = 64: one
                        // warpgroup), "output_r168" (the output pass in 168 registers) or
                        // "output_ws" (the warp-specialised output pass)
  bool tma;             // TMA loads (else cp.async)
  std::int64_t b;       // batch (thread blocks = b * 32 heads * pieces)
  std::int64_t n;       // sequence length
  std::int64_t pieces;  // local-state pass: pieces of the first half of the sequence
  int variant = 0;      // output_ws: the kernel's kVariant (forward_ws.cuh)
};

struct Result {
  Case c;
  std::int64_t blocks = 0, tokens_per_block = 0;
  std::vector<double> ms;
  // Whole forwards (library_forward, output_chained): the chains (b x h) whose Q, K, V and O the
  // model bytes count; 0: one chain per thread block.
  std::int64_t chains = 0;
  // output_ws: its outputs against the library output pass's on the same inputs.
  bool compared = false;
  unsigned long long mismatches = 0;  // elements whose bits differ
  float max_abs_diff = 0.f, max_abs_ref = 0.f;
  // output_chained: medians of its per-piece trace (forward_ws.cuh), microseconds.
  nlohmann::json trace;
};

// Elements of a and b whose bits differ, the largest |a - b| and the largest |b| (non-negative
// floats order as their bits; a NaN difference counts as infinity).
__global__ void compare_kernel(const Element* a,
                               const Element* b,
                               std::int64_t count,
                               unsigned long long* mismatches,
                               unsigned* max_diff_bits,
                               unsigned* max_ref_bits) {
  unsigned long long local = 0;
  float diff = 0.f, ref = 0.f;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < count;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const unsigned short x = reinterpret_cast<const unsigned short*>(a)[i];
    const unsigned short y = reinterpret_cast<const unsigned short*>(b)[i];
    if (x != y) ++local;
    const float fa = __bfloat162float(a[i]), fb = __bfloat162float(b[i]);
    const float d = fabsf(fa - fb);
    diff = fmaxf(diff, d != d ? INFINITY : d);
    ref = fmaxf(ref, fabsf(fb));
  }
  atomicAdd(mismatches, local);
  atomicMax(max_diff_bits, __float_as_uint(diff));
  atomicMax(max_ref_bits, __float_as_uint(ref));
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "lightning-probe-chains: %s: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int repeats = 15;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
      if (repeats < 1) {
        std::fprintf(stderr, "lightning-probe-chains: --repeats needs a positive count\n");
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "lightning-probe-chains: unknown argument '%s' (usage: "
                   "lightning-probe-chains [--json PATH] [--repeats N])\n",
                   arg.c_str());
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "lightning-probe-chains: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device properties");

  // Local-state cases: the first half of a 128k sequence (the second is the last segment, which
  // the pass skips) in 1, 2 or 4 pieces per head, or the first half of 32k at B = 4.
  // Output cases: one thread block per (b, h) over its whole sequence.
  std::vector<Case> cases;
  for (const bool tma : {false, true}) {
    for (const std::int64_t pieces : {1, 2, 4}) {
      cases.push_back({"local_state", tma, 1, 131072, pieces});
    }
    cases.push_back({"local_state", tma, 4, 32768, 1});
    for (const std::int64_t b : {1, 2, 4}) cases.push_back({"output", tma, b, 32768, 1});
  }
  // What one thread block of the D = 128, E = 64 instantiation (one warpgroup, the whole P) takes
  // per step: the rate a head split into two 64-wide value slices would walk its chain at.
  for (const std::int64_t b : {1, 2, 4}) cases.push_back({"output_e64", true, b, 32768, 1});
  for (const std::int64_t b : {1, 2, 4}) cases.push_back({"output_r168", true, b, 32768, 1});
  for (int variant = 0; variant < kWsVariants; ++variant) {
    for (const std::int64_t b : {1, 4}) cases.push_back({"output_ws", true, b, 32768, 1, variant});
  }
  const std::int64_t max_elems = 4 * kHeads * 32768 * kDim;  // every case has 4M tokens x heads
  Element *q, *k, *v, *o, *o_ref;
  float *s, *workspace;
  void* flush;
  const std::size_t bytes = static_cast<std::size_t>(max_elems) * sizeof(Element);
  check(cudaMalloc(&q, bytes), "q");
  check(cudaMalloc(&k, bytes), "k");
  check(cudaMalloc(&v, bytes), "v");
  check(cudaMalloc(&o, bytes), "o");
  check(cudaMalloc(&o_ref, bytes), "o_ref");
  unsigned long long* mismatches;
  unsigned* max_bits;
  check(cudaMalloc(&mismatches, sizeof(unsigned long long)), "compare counters");
  check(cudaMalloc(&max_bits, 2 * sizeof(unsigned)), "compare counters");
  // Every element of o against o_ref (the library's outputs on the same inputs), into r.
  auto compare_outputs = [&](Result& r, std::int64_t count) {
    check(cudaMemset(mismatches, 0, sizeof(unsigned long long)), "compare counters");
    check(cudaMemset(max_bits, 0, 2 * sizeof(unsigned)), "compare counters");
    compare_kernel<<<1024, 256>>>(o, o_ref, count, mismatches, max_bits, max_bits + 1);
    check(cudaGetLastError(), "launch");
    unsigned bits[2];
    check(cudaMemcpy(&r.mismatches, mismatches, sizeof r.mismatches, cudaMemcpyDeviceToHost),
          "compare");
    check(cudaMemcpy(bits, max_bits, sizeof bits, cudaMemcpyDeviceToHost), "compare");
    std::memcpy(&r.max_abs_diff, &bits[0], sizeof(float));
    std::memcpy(&r.max_abs_ref, &bits[1], sizeof(float));
    r.compared = true;
  };
  check(cudaMalloc(&s, kHeads * sizeof(float)), "s");
  check(cudaMalloc(&workspace, 4 * kHeads * 8 * kDim * kDim * sizeof(float)), "workspace");
  constexpr std::size_t kFlushBytes = 256u << 20;
  check(cudaMalloc(&flush, kFlushBytes), "flush buffer");
  fill_kernel<<<1024, 256>>>(q, max_elems, 1);
  fill_kernel<<<1024, 256>>>(k, max_elems, 2);
  fill_kernel<<<1024, 256>>>(v, max_elems, 3);
  std::vector<float> slopes(kHeads);
  for (std::int64_t i = 0; i < kHeads; ++i) slopes[i] = std::exp2(-8.f * (i + 1) / kHeads);
  check(cudaMemcpy(s, slopes.data(), kHeads * sizeof(float), cudaMemcpyHostToDevice), "slopes");

  // [tma][pass]: the kernel and its shared memory.
  using Kernel = void (*)(FwdKernelParams);
  const Kernel kernels[2][2] = {
      {lightning_fwd_kernel<Element, kDim, kDim, FwdMode::kLocalState, false>,
       lightning_fwd_kernel<Element, kDim, kDim, FwdMode::kOutput, false>},
      {lightning_fwd_kernel<Element, kDim, kDim, FwdMode::kLocalState, true>,
       lightning_fwd_kernel<Element, kDim, kDim, FwdMode::kOutput, true>}};
  using TraitsE64 = FwdTraits<Element, kDim, 64>;
  const Kernel kernel_e64 = lightning_fwd_kernel<Element, kDim, 64, FwdMode::kOutput, true>;
  check(cudaFuncSetAttribute(kernel_e64, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(TraitsE64::kTmaSmemBytes)),
        "kernel attributes");
  constexpr int kThreadsWithStateSweep = 384;  // two output warpgroups and a state-sweep one
  const Kernel kernel_r168 =
      lightning_fwd_kernel<Element, kDim, kDim, FwdMode::kOutput, true, kThreadsWithStateSweep>;
  check(cudaFuncSetAttribute(kernel_r168, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(Traits::kTmaSmemBytes)),
        "kernel attributes");
  using WsKernel = void (*)(FwdKernelParams, int*, unsigned long long*);
  const WsKernel kernel_ws[kWsVariants] = {
      lightning_fwd_ws_kernel<Element, 0>, lightning_fwd_ws_kernel<Element, 1>,
      lightning_fwd_ws_kernel<Element, 2>, lightning_fwd_ws_kernel<Element, 3>,
      lightning_fwd_ws_kernel<Element, 4>};
  cudaFuncAttributes ws_attr{};
  const WsKernel kernel_chained = lightning_fwd_ws_kernel<Element, 1, true>;
  const WsKernel kernel_chained_hints = lightning_fwd_ws_kernel<Element, 1, true, true>;
  // The chained pieces in the other order: outputs from zero, then a correction (kOutputsFirst).
  const WsKernel kernel_chained_first =
      lightning_fwd_ws_kernel<Element, 1, true, false, false, true>;
  // The sweep's order with the sweep as one sum over the piece, V weighted by the P warpgroup
  // (kSweep 1), and with no sweep at all (kSweep 2: timing only).
  const WsKernel kernel_chained_fast =
      lightning_fwd_ws_kernel<Element, 1, true, false, false, false, 1>;
  const WsKernel kernel_chained_nosweep =
      lightning_fwd_ws_kernel<Element, 1, true, false, false, false, 2>;
  // The shipped order (variant 1) with its waits timed (kProfile).
  const WsKernel kernel_ws_profile = lightning_fwd_ws_kernel<Element, 1, false, false, true>;
  for (const WsKernel kernel :
       {kernel_ws[0], kernel_ws[1], kernel_ws[2], kernel_ws[3], kernel_ws[4], kernel_chained,
        kernel_chained_hints, kernel_ws_profile, kernel_chained_first, kernel_chained_fast,
        kernel_chained_nosweep}) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(WsFwdTraits::kSmemBytes)),
          "kernel attributes");
    check(cudaFuncGetAttributes(&ws_attr, kernel), "kernel attributes");
    if (!WsFwdTraits::launch_fits(ws_attr.numRegs) || ws_attr.localSizeBytes != 0) {
      // A setmaxnreg increase would wait for registers the block was never given.
      std::fprintf(stderr,
                   "lightning-probe-chains: output_ws compiled for %d registers a thread (%zu "
                   "bytes of local memory); its warpgroups need %d + 2 x %d\n",
                   ws_attr.numRegs, ws_attr.localSizeBytes, WsFwdTraits::kPRegs,
                   WsFwdTraits::kOutRegs);
      return 1;
    }
  }
  cudaFuncAttributes r168_attr{};
  check(cudaFuncGetAttributes(&r168_attr, kernel_r168), "kernel attributes");
  const std::size_t smem[2][2] = {{Traits::kLocalSmemBytes, Traits::kSmemBytes},
                                  {Traits::kLocalSmemBytes, Traits::kTmaSmemBytes}};
  for (int t = 0; t < 2; ++t) {
    for (int k = 0; k < 2; ++k) {
      check(cudaFuncSetAttribute(kernels[t][k], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem[t][k])),
            "kernel attributes");
    }
  }
  // One launch given a trace buffer of 8 words per thread block (launch(trace)); the trace.
  auto traced_run = [&](std::int64_t blocks, auto&& launch) {
    unsigned long long* trace;
    const std::size_t trace_bytes = 8 * blocks * sizeof(unsigned long long);
    check(cudaMalloc(&trace, trace_bytes), "trace");
    launch(trace);
    check(cudaGetLastError(), "launch");
    std::vector<unsigned long long> t(8 * blocks);
    check(cudaMemcpy(t.data(), trace, trace_bytes, cudaMemcpyDeviceToHost), "trace");
    cudaFree(trace);
    return t;
  };
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");

  std::vector<Result> results;
  for (const Case& c : cases) {
    const bool is_local = std::string(c.pass) == "local_state";
    const bool e64 = std::string(c.pass) == "output_e64";
    const bool r168 = std::string(c.pass) == "output_r168";
    const bool ws = std::string(c.pass) == "output_ws";
    const int vdim = e64 ? 64 : kDim;
    FwdKernelParams p{};
    p.q = q;
    p.k = k;
    p.v = v;
    p.o = o;
    const std::int64_t stride[3] = {kHeads * c.n * kDim, c.n * kDim, kDim};
    const std::int64_t vstride[3] = {kHeads * c.n * vdim, c.n * vdim, vdim};
    for (int i = 0; i < 3; ++i) {
      p.q_stride[i] = p.k_stride[i] = stride[i];
      p.v_stride[i] = p.o_stride[i] = vstride[i];
    }
    p.s = s;
    p.intra_scale = p.inter_scale = 1.f / std::sqrt(static_cast<float>(kDim));
    p.update_scale = 1.f;
    p.workspace = workspace;
    p.b = c.b;
    p.h = kHeads;
    p.n = c.n;
    p.segments = is_local ? 2 : 1;
    p.segment_len = is_local ? c.n / 2 : c.n;
    p.local_pieces = is_local ? c.pieces : 1;
    p.use_tma = c.tma;
    const lightning::Shape shape{c.b, kHeads, c.n, kDim, vdim};
    if (c.tma && !encode_tma_maps(p, LIGHTNING_BF16, shape)) {
      std::fprintf(stderr, "lightning-probe-chains: the TMA maps cannot be encoded here\n");
      return 1;
    }
    Result r{c};
    r.blocks = c.b * kHeads * (is_local ? c.pieces : 1);
    r.tokens_per_block = is_local ? c.n / 2 / c.pieces : c.n;
    for (int i = 0; i < repeats + 2; ++i) {
      check(cudaMemsetAsync(flush, i & 0xff, kFlushBytes), "flush");
      check(cudaEventRecord(start), "record");
      const int t = c.tma ? 1 : 0, k = is_local ? 0 : 1;
      if (e64) {
        kernel_e64<<<static_cast<unsigned>(r.blocks), TraitsE64::kThreads,
                     TraitsE64::kTmaSmemBytes>>>(p);
      } else if (ws) {
        kernel_ws[c.variant]<<<static_cast<unsigned>(r.blocks), WsFwdTraits::kThreads,
                               WsFwdTraits::kSmemBytes>>>(p, nullptr, nullptr);
      } else if (r168) {
        kernel_r168<<<static_cast<unsigned>(r.blocks), Traits::kThreads, Traits::kTmaSmemBytes>>>(
            p);
      } else {
        kernels[t][k]<<<static_cast<unsigned>(r.blocks), Traits::kThreads, smem[t][k]>>>(p);
      }
      check(cudaGetLastError(), "launch");
      check(cudaEventRecord(stop), "record");
      check(cudaEventSynchronize(stop), "run");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
      if (i >= 2) r.ms.push_back(ms);  // two warm-up samples
    }
    if (ws) {
      // The library's output pass on the same inputs, into o_ref, then every element compared.
      FwdKernelParams pref = p;
      pref.o = o_ref;
      if (!encode_tma_maps(pref, LIGHTNING_BF16, shape)) {
        std::fprintf(stderr, "lightning-probe-chains: the TMA maps cannot be encoded here\n");
        return 1;
      }
      kernels[1][1]<<<static_cast<unsigned>(r.blocks), Traits::kThreads, smem[1][1]>>>(pref);
      check(cudaGetLastError(), "launch");
      compare_outputs(r, c.b * kHeads * c.n * kDim);
    }
    if (ws && c.variant == 1) {
      // One more run of the shipped order with its waits timed (forward_ws.cuh, kProfile): how
      // much of its loop each side spends waiting, as medians over the thread blocks.
      const std::vector<unsigned long long> t = traced_run(r.blocks, [&](unsigned long long* tr) {
        kernel_ws_profile<<<static_cast<unsigned>(r.blocks), WsFwdTraits::kThreads,
                            WsFwdTraits::kSmemBytes>>>(p, nullptr, tr);
      });
      // Word w of every block as a fraction of its loop (word `loop`), median over blocks.
      auto median_fraction = [&](int w, int loop) {
        std::vector<double> x;
        for (std::int64_t i = 0; i < r.blocks; ++i) {
          x.push_back(static_cast<double>(t[8 * i + w]) / static_cast<double>(t[8 * i + loop]));
        }
        std::sort(x.begin(), x.end());
        return x[x.size() / 2];
      };
      std::vector<double> p_idle;
      for (std::int64_t i = 0; i < r.blocks; ++i) {
        const unsigned long long* e = &t[8 * i];
        p_idle.push_back(static_cast<double>(e[1] + e[2] + e[3]) / static_cast<double>(e[0]));
      }
      std::sort(p_idle.begin(), p_idle.end());
      std::vector<double> sorted = r.ms;
      std::sort(sorted.begin(), sorted.end());
      const double us_per_step = sorted[sorted.size() / 2] * 1e3 / (c.n / kBlockN);
      const double idle = p_idle[p_idle.size() / 2];
      r.trace = {{"p_warpgroup",
                  {{"waiting_fraction", idle},
                   {"waiting_us_per_step", idle * us_per_step},
                   {"tiles_fraction", median_fraction(1, 0)},
                   {"p_buffer_fraction", median_fraction(2, 0)},
                   {"stage_empty_fraction", median_fraction(3, 0)}}},
                 {"output_warpgroup",
                  {{"tiles_fraction", median_fraction(5, 4)},
                   {"p_fraction", median_fraction(6, 4)},
                   {"store_fraction", median_fraction(7, 4)}}}};
      std::printf("  profile (b = %lld): %s\n", static_cast<long long>(c.b),
                  r.trace.dump().c_str());
    }
    results.push_back(r);
  }

  // The chained short-piece scheme (forward_ws.cuh, kChained) against the library's whole forward
  // at the sweep's 128k point (B = 1, H = 32, N = 131072: the plan takes 4 segments), on slopes
  // small enough (s_h = 1e-5 h, s_0 = 0) that every piece's state reaches far down the chain.
  {
    constexpr std::int64_t kN = 131072;
    std::vector<float> small(kHeads);
    for (std::int64_t i = 0; i < kHeads; ++i) small[i] = 1e-5f * static_cast<float>(i);
    float* s_small;
    int* chain_sync;
    check(cudaMalloc(&s_small, kHeads * sizeof(float)), "s");
    check(cudaMemcpy(s_small, small.data(), kHeads * sizeof(float), cudaMemcpyHostToDevice),
          "slopes");
    check(cudaMalloc(&chain_sync, (1 + kHeads) * sizeof(int)), "chain flags");
    auto tensor = [&](void* data) {
      lightning_tensor_t t{};
      t.data = data;
      t.dtype = LIGHTNING_BF16;
      t.rank = 4;
      const std::int64_t shape[4] = {1, kHeads, kN, kDim};
      const std::int64_t stride[4] = {kHeads * kN * kDim, kN * kDim, kDim, 1};
      for (int i = 0; i < 4; ++i) {
        t.shape[i] = shape[i];
        t.stride[i] = stride[i];
      }
      return t;
    };
    lightning_fwd_params_t lp;
    lightning_fwd_params_init(&lp);
    lp.q = tensor(q);
    lp.k = tensor(k);
    lp.v = tensor(v);
    lp.o = tensor(o_ref);
    lp.s = s_small;
    lp.scale = 1.f / std::sqrt(static_cast<float>(kDim));
    lp.flags = LIGHTNING_FLAG_SKIP_SLOPE_CHECK;
    std::size_t ws_bytes = 0;
    if (lightning_forward_workspace_size(&lp, &ws_bytes) != LIGHTNING_SUCCESS) {
      std::fprintf(stderr, "lightning-probe-chains: %s\n", lightning_last_error_message());
      return 1;
    }
    void* lib_ws = nullptr;
    if (ws_bytes > 0) check(cudaMalloc(&lib_ws, ws_bytes), "library workspace");
    lp.workspace = lib_ws;
    lp.workspace_bytes = ws_bytes;
    auto time_samples = [&](Result& r, auto&& launch) {
      for (int i = 0; i < repeats + 2; ++i) {
        check(cudaMemsetAsync(flush, i & 0xff, kFlushBytes), "flush");
        check(cudaMemsetAsync(chain_sync, 0, (1 + kHeads) * sizeof(int)), "chain flags");
        check(cudaEventRecord(start), "record");
        launch();
        check(cudaEventRecord(stop), "record");
        check(cudaEventSynchronize(stop), "run");
        float ms = 0;
        check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
        if (i >= 2) r.ms.push_back(ms);
      }
    };
    {
      Result r{{"library_forward", true, 1, kN, 0}};
      r.blocks = kHeads;
      r.chains = kHeads;
      r.tokens_per_block = kN;
      time_samples(r, [&] {
        if (lightning_forward(&lp, nullptr) != LIGHTNING_SUCCESS) {
          std::fprintf(stderr, "lightning-probe-chains: %s\n", lightning_last_error_message());
          std::exit(1);
        }
      });
      results.push_back(r);
    }
    // order 0: sweep, hand-over, outputs; 1: the same with L2 hints; 2: outputs from zero,
    // hand-over, corrections (output_chained_first); 3: as 0 with the sweep as one sum, its V
    // weighted by the P warpgroup (output_chained_fast); 4: as 0 without the sweep
    // (output_chained_nosweep, timing only: its outputs are not compared).
    for (const int order : {0, 1, 2, 3, 4})
      for (const std::int64_t piece : {512, 1024, 2048, 4096}) {
        const int hints = order == 1;
        const bool first = order == 2;
        const bool fast = order == 3;
        const bool nosweep = order == 4;
        const WsKernel chained = first     ? kernel_chained_first
                                 : hints   ? kernel_chained_hints
                                 : fast    ? kernel_chained_fast
                                 : nosweep ? kernel_chained_nosweep
                                           : kernel_chained;
        FwdKernelParams p{};
        p.q = q;
        p.k = k;
        p.v = v;
        p.o = o;
        const std::int64_t stride[3] = {kHeads * kN * kDim, kN * kDim, kDim};
        for (int i = 0; i < 3; ++i)
          p.q_stride[i] = p.k_stride[i] = p.v_stride[i] = p.o_stride[i] = stride[i];
        p.s = s_small;
        p.intra_scale = p.inter_scale = 1.f / std::sqrt(static_cast<float>(kDim));
        p.update_scale = 1.f;
        p.workspace = workspace;  // two states per chain
        p.b = 1;
        p.h = kHeads;
        p.n = kN;
        p.segments = kN / piece;
        p.segment_len = piece;
        p.local_pieces = 1;
        p.use_tma = 1;
        const lightning::Shape shape{1, kHeads, kN, kDim, kDim};
        if (!encode_tma_maps(p, LIGHTNING_BF16, shape)) {
          std::fprintf(stderr, "lightning-probe-chains: the TMA maps cannot be encoded here\n");
          return 1;
        }
        Result r{{first     ? "output_chained_first"
                  : fast    ? "output_chained_fast"
                  : nosweep ? "output_chained_nosweep"
                            : "output_chained",
                  true, 1, kN, piece, hints}};
        r.blocks = kHeads * p.segments;
        r.chains = kHeads;
        r.tokens_per_block = kN;
        time_samples(r, [&] {
          chained<<<static_cast<unsigned>(r.blocks), WsFwdTraits::kThreads,
                    WsFwdTraits::kSmemBytes>>>(p, chain_sync, nullptr);
          check(cudaGetLastError(), "launch");
        });
        // Against the library's forward (different state sums, so not bit for bit): the largest
        // difference, which a lost or doubled state contribution would make large.
        if (!nosweep) compare_outputs(r, kHeads * kN * kDim);
        // One more run with the per-piece trace: where a piece's time goes, and how fast the state
        // travels down a chain.
        {
          const std::vector<unsigned long long> t =
              traced_run(r.blocks, [&](unsigned long long* tr) {
                check(cudaMemsetAsync(chain_sync, 0, (1 + kHeads) * sizeof(int)), "chain flags");
                chained<<<static_cast<unsigned>(r.blocks), WsFwdTraits::kThreads,
                          WsFwdTraits::kSmemBytes>>>(p, chain_sync, tr);
              });
          auto median_us = [](std::vector<double> x) {
            std::sort(x.begin(), x.end());
            return x.empty() ? 0.0 : x[x.size() / 2];
          };
          std::vector<double> sweep, wait, handover, outputs, link;
          unsigned long long t0 = ~0ull, t_end = 0;
          for (std::int64_t i = 0; i < r.blocks; ++i) {
            const unsigned long long* e = &t[8 * i];
            sweep.push_back((e[2] - e[1]) * 1e-3);
            wait.push_back((e[3] - e[2]) * 1e-3);
            handover.push_back((e[4] - e[3]) * 1e-3);
            outputs.push_back((e[5] - e[4]) * 1e-3);
            t0 = std::min(t0, e[1]);
            t_end = std::max(t_end, e[5]);
            if (i >= kHeads)
              link.push_back((static_cast<double>(e[4]) - t[8 * (i - kHeads) + 4]) * 1e-3);
          }
          // The phases in the order of the kernel: sweep then outputs, or (first) outputs from
          // zero then corrections.
          r.trace = {{first ? "outputs_from_zero_us_median" : "sweep_us_median", median_us(sweep)},
                     {"wait_us_median", median_us(wait)},
                     {"handover_us_median", median_us(handover)},
                     {first ? "corrections_us_median" : "outputs_us_median", median_us(outputs)},
                     {"link_us_median", median_us(link)},
                     {"span_us", (t_end - t0) * 1e-3}};
          std::printf("  trace (piece %lld%s): %s\n", static_cast<long long>(piece),
                      first     ? ", outputs first"
                      : hints   ? ", L2 hints"
                      : fast    ? ", fast sweep"
                      : nosweep ? ", no sweep"
                                : "",
                      r.trace.dump().c_str());
        }
        results.push_back(r);
      }
  }

  nlohmann::json report;
  bool failed = false;  // the warp-specialised pass's outputs differ from the library's
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  report["tool"] = "lightning-probe-chains";
  report["git_sha"] = LIGHTNING_PROBE_GIT_SHA;
  report["date"] = date;
  report["environment"] = {{"gpu", prop.name},
                           {"sms", prop.multiProcessorCount},
                           {"l2_bytes", prop.l2CacheSize},
                           {"driver", driver},
                           {"runtime", runtime}};
  report["setup"] = {{"dtype", "bf16"},  {"heads", kHeads},    {"d", kDim},      {"e", kDim},
                     {"layout", "bhnd"}, {"repeats", repeats}, {"cold_l2", true}};
  // The capped output pass's registers and local memory (spills), as compiled.
  report["output_r168_kernel"] = {{"registers", r168_attr.numRegs},
                                  {"local_bytes", r168_attr.localSizeBytes}};
  report["output_ws_kernel"] = {{"registers_at_launch", ws_attr.numRegs},
                                {"local_bytes", ws_attr.localSizeBytes},
                                {"p_warpgroup_registers", WsFwdTraits::kPRegs},
                                {"output_warpgroup_registers", WsFwdTraits::kOutRegs}};
  std::printf("output_r168: %d registers, %zu bytes of local memory a thread\n", r168_attr.numRegs,
              r168_attr.localSizeBytes);
  std::printf("output_ws: %d registers at launch, %zu bytes of local memory a thread\n",
              ws_attr.numRegs, ws_attr.localSizeBytes);
  std::printf("%-12s %-9s %6s %8s %14s %10s %14s %12s\n", "pass", "loads", "blocks", "tokens",
              "median ms", "us/block", "GB/s (all)", "GB/s/block");
  for (Result& r : results) {
    std::vector<double> sorted = r.ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double steps = static_cast<double>(r.tokens_per_block) / kBlockN;
    const double us_per_step = median * 1e3 / steps;
    // Model bytes: the local-state pass reads K and V; the output pass reads Q, K, V, writes O.
    // (output_e64: Q and K of width D, V and O of width 64.)
    const bool is_local = std::string(r.c.pass) == "local_state";
    const bool e64 = std::string(r.c.pass) == "output_e64";
    const double bytes_moved = static_cast<double>(r.chains > 0 ? r.chains : r.blocks) *
                               r.tokens_per_block * 2 *
                               (is_local ? 2 * kDim
                                : e64    ? 2 * kDim + 2 * 64
                                         : 4 * kDim);
    const double gbs = bytes_moved / (median * 1e-3) / 1e9;
    const std::string name =
        std::string(r.c.pass) == "output_ws" ? "output_ws" + std::to_string(r.c.variant)
        : std::string(r.c.pass) == "output_chained" && r.c.variant == 1 ? "output_chained_h"
        : std::string(r.c.pass) == "output_chained_first"               ? "output_chained_f"
        : std::string(r.c.pass) == "output_chained_fast"                ? "output_chained_s"
        : std::string(r.c.pass) == "output_chained_nosweep"             ? "output_chained_0"
                                                                        : r.c.pass;
    std::printf("%-12s %-9s %6lld %8lld %14.3f %10.3f %14.0f %12.1f\n", name.c_str(),
                r.c.tma ? "tma" : "cp.async", static_cast<long long>(r.blocks),
                static_cast<long long>(r.tokens_per_block), median, us_per_step, gbs,
                gbs / static_cast<double>(r.blocks));
    report["cases"].push_back({{"pass", r.c.pass},
                               {"loads", r.c.tma ? "tma" : "cp.async"},
                               {"b", r.c.b},
                               {"n", r.c.n},
                               {"thread_blocks", r.blocks},
                               {"tokens_per_thread_block", r.tokens_per_block},
                               {"samples_ms", r.ms},
                               {"median_ms", median},
                               {"min_ms", sorted.front()},
                               {"max_ms", sorted.back()},
                               {"us_per_64_token_step", us_per_step},
                               {"model_gb_per_s", gbs}});
    if (std::string(r.c.pass) == "output_ws") {
      report["cases"].back()["variant"] = r.c.variant;
      if (!r.trace.is_null()) report["cases"].back()["profile"] = r.trace;
    }
    if (r.chains > 0) {
      // A whole forward: tokens_per_thread_block is a chain's length, us_per_64_token_step the
      // time per step of one chain.
      report["cases"].back()["chains"] = r.chains;
      // Tokens as the sweep counts them, B x N (not x H).
      report["cases"].back()["mtok_per_s"] =
          static_cast<double>(r.chains / kHeads) * r.tokens_per_block / (median * 1e3);
      if (std::string(r.c.pass).rfind("output_chained", 0) == 0) {
        report["cases"].back()["piece_tokens"] = r.c.pieces;
        report["cases"].back()["trace"] = r.trace;
        report["cases"].back()["l2_hints"] = r.c.variant == 1;
      }
    }
    if (r.compared) {
      report["cases"].back()["against_library"] = {{"elements_with_other_bits", r.mismatches},
                                                   {"max_abs_diff", r.max_abs_diff},
                                                   {"max_abs_library", r.max_abs_ref}};
      std::printf("  against the library: %llu elements differ, max |diff| %g (max |o| %g)\n",
                  r.mismatches, r.max_abs_diff, r.max_abs_ref);
      const bool chained = std::string(r.c.pass).rfind("output_chained", 0) == 0;
      if (chained ? !(r.max_abs_diff <= 0.02f * r.max_abs_ref) : r.mismatches != 0) failed = true;
    }
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << report.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "lightning-probe-chains: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  if (failed) {
    std::fprintf(stderr,
                 "lightning-probe-chains: output_ws or output_chained differs from the library's "
                 "outputs\n");
    return 1;
  }
  return 0;
}
