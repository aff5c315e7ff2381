#include "runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

#include <lightning/api.h>
#include <lightning/errors.h>

#include "cli.h"
#include "engine.h"
#include "gpu_backend.h"
#include "model.h"
#include "nvtx.h"
#include "plan.h"
#include "provider.h"
#include "report.h"
#include "result.h"
#include "table.h"
#include "verify.h"

#include <unistd.h>

namespace lightning::bench {

namespace {

std::atomic<bool> g_interrupted{false};
// The signal that stopped the sweep (SIGINT: Ctrl-C; SIGTERM: kill, a job scheduler's notice).
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_interrupted.store(true);
  g_stop_signal.store(sig);
  static const char kMessage[] =
      "\nlightning-bench: interrupted: stopping after the current sample and writing the report "
      "(the same signal again aborts now)\n";
  ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
  std::signal(sig, SIG_DFL);
}

std::string shorten(std::string s, std::size_t max = 400) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

ProblemSpec make_spec(const Options& o, const Point& p) {
  ProblemSpec s;
  s.b = p.b;
  s.h = o.heads;
  s.n = p.n;
  s.d = o.dim;
  s.e = o.vdim;
  s.dtype = o.dtype;
  s.layout = o.layout;
  s.slopes = slopes_for(o.decay, o.heads);
  s.scale = o.scale;
  s.seed = seed_for_length(o.seed, p.n);
  return s;
}

std::string key_of(const Point& p) {
  return p.provider + "/" + mode_name(p.mode) + "/" + std::to_string(p.n);
}

struct SweepState {
  Options& options;
  std::unique_ptr<GpuBackend> gpu;
  std::string gpu_reason;
  std::string gpu_broken;  // the sticky CUDA error that ended GPU work
  std::unique_ptr<Engine> cpu_engine = make_cpu_engine();
  std::map<std::string, std::unique_ptr<Provider>> providers;
  std::map<std::string, Verification> first_verification;  // by provider/mode/n, from repeat 0
  std::unique_ptr<Verifier> verifier;
  Progress* progress = nullptr;

  Provider& provider(const ProviderInfo& info) {
    auto& slot = providers[info.name];
    if (!slot) slot = info.gpu ? gpu->make_provider(info.name) : make_cpu_provider(info.name);
    if (!slot) throw std::runtime_error(std::string("no implementation of provider ") + info.name);
    return *slot;
  }
};

PointResult run_point(SweepState& st, const Point& point) {
  const Options& o = st.options;
  const ProviderInfo& info = find_provider(point.provider);
  PointResult r;
  r.point = point;
  r.family = info.family;
  r.gpu = info.gpu;
  r.started_at = iso8601_utc_now();
  const auto t0 = std::chrono::steady_clock::now();
  auto done = [&]() -> PointResult& {
    r.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  if (info.gpu && !st.gpu) {
    r.status = "skipped";
    r.reason = "no usable GPU: " + st.gpu_reason;
    return done();
  }
  if (info.gpu && !st.gpu_broken.empty()) {
    r.status = "failed";
    r.reason = "CUDA context unusable after an earlier error: " + st.gpu_broken;
    return done();
  }
  const ProblemSpec spec = make_spec(o, point);
  NvtxRange point_range("lightning-bench N=" + format_count(point.n) +
                        " B=" + std::to_string(point.b) + " " + point.provider + " " +
                        mode_name(point.mode) + " repeat " + std::to_string(point.repeat));
  GpuBackend* gpu = info.gpu ? st.gpu.get() : nullptr;
  try {
    Provider& provider = st.provider(info);
    std::int64_t base = 0, peak_prepare = 0;
    if (gpu) {
      gpu->reset_peak();
      base = gpu->current_bytes();
    }
    std::unique_ptr<Instance> instance;
    {
      NvtxRange phase("allocate+fill");
      instance = provider.prepare(spec, point.mode);
      if (gpu) {
        gpu->synchronize();
        peak_prepare = gpu->peak_bytes();
      }
    }
    if (o.verify) {
      const std::string key = key_of(point);
      auto it = st.first_verification.find(key);
      if (it == st.first_verification.end()) {
        NvtxRange phase("verify");
        instance->run(point.mode);
        if (gpu) gpu->synchronize();
        r.verification = st.verifier->verify(*instance, spec, info.family, point.mode);
        st.first_verification[key] = r.verification;
        // The verifier's own buffers (the oracle's) are not the point's: the peak restarts below,
        // and the warm-up repeats the provider's run inside the measured window.
      } else if (it->second.status == "failed") {
        r.status = "failed";
        r.reason = "verification failed at this length in an earlier repeat";
      }
      if (r.verification.status == "failed") {
        r.status = "failed";
        r.reason = "verification failed: " + shorten(r.verification.message);
      }
    }
    if (gpu) gpu->reset_peak();
    const MeasureConfig config = measure_config(o);
    Engine& engine = gpu ? gpu->engine() : *st.cpu_engine;
    {
      NvtxRange phase(o.profile ? "profile" : "measure");
      Progress* progress = st.progress;
      r.timing = engine.measure(
          *instance, point.mode, config,
          [progress](int samples) {
            if (progress) progress->sample(samples);
          },
          g_interrupted);
    }
    if (gpu) {
      r.peak_bytes = std::max(peak_prepare, gpu->peak_bytes()) - base;
      r.memory_source = "tracking-allocator";
    } else {
      r.peak_bytes = instance->host_bytes();
      r.memory_source = "host-buffers";
    }
    if (r.timing.samples_ms.empty()) {
      if (r.status == "ok") {
        r.status = "failed";
        r.reason = "no sample kept (" + std::to_string(r.timing.discarded_throttled) +
                   " discarded as throttled, stop: " + r.timing.stop_reason + ")";
      }
      return done();
    }
    finish_timing(r.timing);
    r.timed = true;
    r.work = model_work(info.family, point.mode, point.b, o.heads, point.n, o.dim, o.vdim,
                        dtype_size(to_c(o.dtype)));
    const double seconds = r.timing.ci.median / 1e3;
    r.tokens_per_s = r.work.tokens / seconds;
    r.tokens_per_s_lo = r.work.tokens / (r.timing.ci.hi / 1e3);
    r.tokens_per_s_hi = r.work.tokens / (r.timing.ci.lo / 1e3);
    r.gb_per_s = r.work.bytes / seconds / 1e9;
    r.tflop_per_s = r.work.flops / seconds / 1e12;
    const double peak = o.peak_bandwidth_gbps > 0 ? o.peak_bandwidth_gbps * 1e9
                        : gpu                     ? gpu->peak_bandwidth_bytes_per_s()
                                                  : 0;
    if (gpu && peak > 0) r.pct_peak_bandwidth = 100 * r.work.bytes / seconds / peak;
  } catch (const OutOfMemory& e) {
    r.status = "skipped";
    r.reason = "out of memory";
    if (e.requested_bytes() > 0) {
      r.reason += " allocating " + format_bytes(static_cast<double>(e.requested_bytes()));
    }
    if (gpu) r.reason += " (device " + format_bytes(static_cast<double>(gpu->total_bytes())) + ")";
    r.reason += ": " + shorten(e.what(), 200);
  } catch (const NotBuilt& e) {
    r.status = "skipped";
    r.reason = shorten(e.what());
  } catch (const std::exception& e) {
    r.status = "failed";
    r.reason = shorten(e.what());
    if (gpu) st.gpu_broken = gpu->health_check();
  }
  return done();
}

}  // namespace

int run_sweep(Options& options) {
  if (options.list_devices) {
    std::cout << list_devices_text();
    return 0;
  }
  SweepState st{options, nullptr, "", "", make_cpu_engine(), {}, {}, nullptr, nullptr};
  st.gpu = make_gpu_backend(options, &st.gpu_reason);
  const std::string changed = st.gpu ? std::string() : apply_cpu_defaults(options);
  const std::vector<Point> plan = make_plan(options);  // bad sizes fail here, before any output
  if (!st.gpu) {
    if (!changed.empty()) {
      std::fprintf(stderr,
                   "lightning-bench: no usable GPU (%s): running the CPU providers at sizes that "
                   "finish in about a minute (%s); pass --providers, --seqlens, --tokens, --heads "
                   "or --dim to change them\n",
                   st.gpu_reason.c_str(), changed.c_str());
    } else if (std::any_of(options.providers.begin(), options.providers.end(),
                           [](const std::string& p) { return find_provider(p).gpu; })) {
      std::fprintf(stderr, "lightning-bench: no usable GPU (%s): GPU providers are skipped\n",
                   st.gpu_reason.c_str());
    }
  }

  st.verifier = std::make_unique<Verifier>(options);
  if (st.gpu) st.verifier->set_gpu_oracle(st.gpu->oracle(), st.gpu->oracle_name());

  ReportWriter report(options.json_path);
  nlohmann::json& doc = report.document();
  doc["$schema"] = "https://lightning.invalid/reports/schema/report.schema.json";
  doc["schema"] = kReportSchemaName;
  doc["schema_version"] = kReportSchemaVersion;
  doc["tool"] = tool_json(tool_info());
  doc["command"] = {{"argv", options.argv}};
  doc["options"] = options_json(options);
  doc["environment"] = {
      {"host", host_json()},
      {"device", st.gpu ? st.gpu->device_json() : nlohmann::json(nullptr)},
      {"gpu_unavailable_reason", st.gpu ? nlohmann::json(nullptr) : nlohmann::json(st.gpu_reason)},
      {"measurement", st.gpu ? st.gpu->timer_json()
                             : nlohmann::json{{"timer", "host"},
                                              {"note",
                                               "std::chrono::steady_clock around each "
                                               "synchronous CPU run"}}}};
  doc["model"] = model_json();
  doc["criteria"] = {{"max_min_ratio", VerdictCriteria{}.max_min_ratio},
                     {"slope_bound", VerdictCriteria{}.slope_bound},
                     {"confidence", 0.95}};
  doc["started_at"] = iso8601_utc_now();
  doc["updated_at"] = doc["started_at"];
  doc["finished_at"] = nullptr;
  doc["status"] = "running";
  doc["points_planned"] = static_cast<std::int64_t>(plan.size());
  doc["points"] = nlohmann::json::array();
  doc["summary"] = summary_json({}, {});
  report.write();

  Table table(stdout);
  Progress progress(options.progress, static_cast<int>(plan.size()));
  st.progress = &progress;
  if (options.table) table.header();

  g_interrupted.store(false);
  g_stop_signal.store(0);
  auto previous_int = std::signal(SIGINT, on_stop_signal);
  auto previous_term = std::signal(SIGTERM, on_stop_signal);

  std::vector<PointResult> results;
  bool interrupted = false;
  for (const Point& point : plan) {
    if (g_interrupted.load()) {
      interrupted = true;
      break;
    }
    progress.start_point(point);
    PointResult r = run_point(st, point);
    if (g_interrupted.load() && r.timing.stop_reason == "interrupted") {
      interrupted = true;  // an unfinished point is not recorded
      break;
    }
    results.push_back(r);
    doc["points"].push_back(point_json(r));
    doc["summary"] = summary_json(results, compute_verdicts(options, results));
    doc["updated_at"] = iso8601_utc_now();
    report.write();
    progress.clear();
    if (options.table) table.row(r);
    progress.finish_point();
  }
  interrupted = interrupted || g_interrupted.load();
  std::signal(SIGINT, previous_int == SIG_ERR ? SIG_DFL : previous_int);
  std::signal(SIGTERM, previous_term == SIG_ERR ? SIG_DFL : previous_term);
  progress.clear();

  const auto verdicts = compute_verdicts(options, results);
  doc["summary"] = summary_json(results, verdicts);
  doc["status"] = interrupted ? "interrupted" : "complete";
  doc["finished_at"] = iso8601_utc_now();
  doc["updated_at"] = doc["finished_at"];
  report.write();
  table.verdicts(verdicts);

  int failed = 0, skipped = 0;
  for (const auto& r : results) {
    failed += r.status == "failed";
    skipped += r.status == "skipped";
  }
  std::fprintf(stderr,
               "lightning-bench: %zu of %zu points finished (%zu ok, %d skipped, %d failed)%s%s\n",
               results.size(), plan.size(), results.size() - failed - skipped, skipped, failed,
               report.enabled() ? "; report: " : "", report.enabled() ? report.path().c_str() : "");
  if (interrupted) return 128 + (g_stop_signal.load() == SIGTERM ? SIGTERM : SIGINT);
  return failed > 0 ? 1 : 0;
}

}  // namespace lightning::bench
