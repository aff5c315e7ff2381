#include "report.h"

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <lightning/api.h>

#include "cli.h"

#include <unistd.h>

#ifndef LIGHTNING_BENCH_GIT_SHA
#define LIGHTNING_BENCH_GIT_SHA "unknown"
#endif
#ifndef LIGHTNING_BENCH_SOURCE_DIR
#define LIGHTNING_BENCH_SOURCE_DIR ""
#endif
#ifndef LIGHTNING_BENCH_BUILD_TYPE
#define LIGHTNING_BENCH_BUILD_TYPE ""
#endif

namespace lightning::bench {

using nlohmann::json;

namespace {

// JSON has no NaN or infinity: those become null.
json num(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json nums(const std::vector<double>& values) {
  json a = json::array();
  for (double v : values) a.push_back(num(v));
  return a;
}

// Raw samples at a nanosecond's resolution (finer than CUDA events' ~0.5 us), so they print short.
json samples(const std::vector<double>& ms) {
  json a = json::array();
  for (double v : ms) a.push_back(num(std::round(v * 1e6) / 1e6));
  return a;
}

// The first line of a shell command's stdout ("" on any failure).
std::string run_capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe)) out += buf.data();
  const int rc = pclose(pipe);
  if (rc != 0) return "";
  return out;
}

std::string first_line(const std::string& s) {
  const auto end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

std::string read_first_matching_line(const char* path, const char* prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) return line;
      std::string v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
      return v;
    }
  }
  return "";
}

}  // namespace

ToolInfo tool_info() {
  ToolInfo t;
  t.version = lightning::version();
  t.build_type = LIGHTNING_BENCH_BUILD_TYPE;
  t.cuda_build = lightning::built_with_cuda();
#if defined(__clang__)
  t.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  t.compiler = "gcc " __VERSION__;
#endif
  // A sha given at configure time (-DLIGHTNING_GIT_SHA) is the user's word and wins; otherwise the
  // sha of the tree the binary runs from beats the configure-time one (the tree may have moved on
  // since configuring); the configure-time value is the fallback where git is unavailable.
  const std::string src = LIGHTNING_BENCH_SOURCE_DIR;
  std::string sha;
  if (!LIGHTNING_BENCH_GIT_SHA_GIVEN && !src.empty()) {
    sha = first_line(run_capture("git -C '" + src + "' rev-parse --short=12 HEAD 2>/dev/null"));
  }
  if (!sha.empty()) {
    t.git_sha = sha;
    t.git_sha_source = "runtime";
    const std::string status =
        run_capture("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null");
    t.git_dirty = status.empty() ? 0 : 1;
  } else if (std::string(LIGHTNING_BENCH_GIT_SHA) != "unknown") {
    t.git_sha = LIGHTNING_BENCH_GIT_SHA;
    t.git_sha_source = "configure";
  } else {
    t.git_sha = "unknown";
    t.git_sha_source = "none";
  }
  return t;
}

std::string iso8601_utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json tool_json(const ToolInfo& t) {
  return {{"name", "lightning-bench"},
          {"version", t.version},
          {"git_sha", t.git_sha},
          {"git_sha_source", t.git_sha_source},
          {"git_dirty", t.git_dirty < 0 ? json(nullptr) : json(t.git_dirty == 1)},
          {"build_type", t.build_type},
          {"cuda_build", t.cuda_build},
          {"compiler", t.compiler}};
}

json options_json(const Options& o) {
  json modes = json::array();
  for (Mode m : o.modes) modes.push_back(mode_name(m));
  return {{"seqlens_spec", o.seqlens_spec},
          {"seqlens", o.seqlens},
          {"tokens", o.tokens},
          {"batch", o.batch > 0 ? json(o.batch) : json(nullptr)},
          {"heads", o.heads},
          {"dim", o.dim},
          {"vdim", o.vdim},
          {"dtype", dtype_name(to_c(o.dtype))},
          {"layout", layout_name(o.layout)},
          {"decay", o.decay},
          {"slopes", slopes_for(o.decay, o.heads)},
          {"scale", o.scale},
          {"providers", o.providers},
          {"modes", modes},
          {"cache", o.warm ? "warm" : "cold"},
          {"min_samples", o.min_samples},
          {"max_samples", o.max_samples},
          {"min_time_s", o.min_time_s},
          {"noise", o.noise},
          {"timeout_s", o.timeout_s},
          {"throttle", o.throttle},
          {"timer", timer_name(o.timer)},
          {"profile", o.profile},
          {"device", o.device},
          {"seed", o.seed},
          {"peak_bandwidth_gbps",
           o.peak_bandwidth_gbps > 0 ? json(o.peak_bandwidth_gbps) : json(nullptr)},
          {"verify", o.verify},
          {"verify_heads", o.verify_heads},
          {"verify_budget_gflop", o.verify_budget_gflop},
          {"repeat", o.repeat},
          {"json", o.json_path},
          {"cpu_defaults", o.cpu_defaults}};
}

json host_json() {
  char hostname[256] = {0};
  gethostname(hostname, sizeof hostname - 1);
  std::string os = first_line(run_capture("uname -srm 2>/dev/null"));
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return {{"hostname", hostname},
          {"os", os},
          {"cpu", read_first_matching_line("/proc/cpuinfo", "model name")},
          {"logical_cores", std::thread::hardware_concurrency()},
          {"memory_bytes", pages > 0 && page > 0
                               ? json(static_cast<double>(pages) * static_cast<double>(page))
                               : json(nullptr)}};
}

json model_json() {
  return {{"bytes",
           "minimum traffic per token per head: fwd (2D+2E), bwd (4D+3E), fwdbwd (6D+5E) "
           "elements of the storage dtype"},
          {"flops",
           {{"linear-blocked", flops_model_name(Family::kLinearBlocked)},
            {"linear-recurrent", flops_model_name(Family::kLinearRecurrent)},
            {"softmax", flops_model_name(Family::kSoftmax)}}},
          {"block", kModelBlock},
          {"tokens_per_s", "B * N / median time (all H heads)"}};
}

json point_json(const PointResult& r) {
  json p = {{"index", r.point.index},
            {"repeat", r.point.repeat},
            {"provider", r.point.provider},
            {"family", family_name(r.family)},
            {"gpu", r.gpu},
            {"mode", mode_name(r.point.mode)},
            {"seqlen", r.point.n},
            {"batch", r.point.b},
            {"tokens", r.point.b * r.point.n},
            {"status", r.status},
            {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
            {"started_at", r.started_at},
            {"elapsed_s", num(r.elapsed_s)}};
  if (r.timed) {
    const Timing& t = r.timing;
    p["timing"] = {{"timer", t.timer},
                   {"cache", t.cache},
                   {"samples", static_cast<std::int64_t>(t.samples_ms.size())},
                   {"median_ms", num(t.ci.median)},
                   {"ci95_ms", {num(t.ci.lo), num(t.ci.hi)}},
                   {"ci_coverage", num(t.ci.coverage)},
                   {"mean_ms", num(t.summary.mean)},
                   {"stdev_ms", num(t.summary.stdev)},
                   {"min_ms", num(t.summary.min)},
                   {"max_ms", num(t.summary.max)},
                   {"noise", num(t.noise)},
                   {"stop_reason", t.stop_reason},
                   {"warmup_ms", num(t.warmup_ms)},
                   {"wall_s", num(t.wall_s)},
                   {"discarded_throttled", t.discarded_throttled},
                   {"reference_clock_mhz", num(t.reference_clock_mhz)},
                   {"samples_ms", samples(t.samples_ms)},
                   {"event_samples_ms", samples(t.event_samples_ms)},
                   {"cupti_samples_ms", samples(t.cupti_samples_ms)},
                   {"sm_clock_mhz", nums(t.sm_clock_mhz)},
                   {"discarded_clock_mhz", nums(t.discarded_clock_mhz)}};
    p["throughput"] = {{"tokens_per_s", num(r.tokens_per_s)},
                       {"tokens_per_s_ci95", {num(r.tokens_per_s_lo), num(r.tokens_per_s_hi)}},
                       {"model_bytes", num(r.work.bytes)},
                       {"gb_per_s", num(r.gb_per_s)},
                       {"pct_peak_bandwidth",
                        r.pct_peak_bandwidth >= 0 ? num(r.pct_peak_bandwidth) : json(nullptr)},
                       {"model_flops", num(r.work.flops)},
                       {"tflop_per_s", num(r.tflop_per_s)}};
  } else {
    p["timing"] = nullptr;
    p["throughput"] = nullptr;
  }
  p["memory"] = {{"peak_bytes", r.peak_bytes >= 0 ? json(r.peak_bytes) : json(nullptr)},
                 {"source", r.memory_source.empty() ? json(nullptr) : json(r.memory_source)}};
  const Verification& v = r.verification;
  if (v.status == "not-run") {
    p["verification"] = nullptr;
  } else {
    json heads = json::array();
    for (const auto& bh : v.heads) heads.push_back({bh[0], bh[1]});
    json tensors = json::array();
    for (const auto& t : v.tensors) {
      tensors.push_back({{"name", t.name},
                         {"pass", t.pass},
                         {"max_abs", num(t.max_abs)},
                         {"max_abs_limit", num(t.max_abs_limit)},
                         {"baseline_max_abs", num(t.baseline_max_abs)},
                         {"rel_l2", num(t.rel_l2)},
                         {"rel_l2_limit", num(t.rel_l2_limit)},
                         {"nan_count", t.nan_count},
                         {"message", t.message}});
    }
    p["verification"] = {{"status", v.status},       {"reference", v.reference},
                         {"baseline", v.baseline},   {"heads", heads},
                         {"tensors", tensors},       {"message", v.message},
                         {"seconds", num(v.seconds)}};
  }
  return p;
}

json verdict_json(const SweepVerdict& v) {
  const Verdict& d = v.verdict;
  return {{"provider", v.provider},
          {"mode", mode_name(v.mode)},
          {"verdict", d.verdict},
          {"reason", d.reason},
          {"line", verdict_line(v)},
          {"seqlens", d.seqlens},
          {"median_tokens_per_s", nums(d.median_tokens_per_s)},
          {"max_min_ratio", num(d.max_min_ratio)},
          {"slope", num(d.fit.slope)},
          {"slope_ci95", {num(d.fit.slope_lo), num(d.fit.slope_hi)}},
          {"slope_se", num(d.fit.slope_se)},
          {"slope_df", d.fit.df},
          {"samples", d.samples},
          {"points_ok", v.points_ok},
          {"points_skipped", v.points_skipped},
          {"points_failed", v.points_failed},
          {"complete", v.complete},
          {"peak_bytes_max", v.peak_bytes_max >= 0 ? json(v.peak_bytes_max) : json(nullptr)},
          {"peak_bytes_max_min_ratio",
           v.peak_bytes_max_min_ratio > 0 ? num(v.peak_bytes_max_min_ratio) : json(nullptr)}};
}

json summary_json(const std::vector<PointResult>& results,
                  const std::vector<SweepVerdict>& verdicts) {
  int ok = 0, skipped = 0, failed = 0, throttled = 0, verify_failed = 0;
  for (const auto& r : results) {
    if (r.status == "ok") ++ok;
    if (r.status == "skipped") ++skipped;
    if (r.status == "failed") ++failed;
    if (r.verification.status == "failed") ++verify_failed;
    throttled += r.timing.discarded_throttled;
  }
  json vs = json::array();
  for (const auto& v : verdicts) vs.push_back(verdict_json(v));
  return {{"counts",
           {{"points", static_cast<int>(results.size())},
            {"ok", ok},
            {"skipped", skipped},
            {"failed", failed},
            {"verification_failed", verify_failed},
            {"throttled_samples_discarded", throttled}}},
          {"verdicts", vs}};
}

void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int saved = errno;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(ok ? errno : saved));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
}

void ReportWriter::write() const {
  if (!enabled()) return;
  write_file_atomically(path_, doc_.dump(1) + "\n");
}

}  // namespace lightning::bench
