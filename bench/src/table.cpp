#include "table.h"

#include <cmath>

#include "cli.h"

#include <unistd.h>

namespace lightning::bench {

std::string format_bytes(double bytes) {
  if (!(bytes >= 0)) return "-";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

void Table::header() {
  if (header_done_) return;
  header_done_ = true;
  std::fprintf(out_, "%6s %6s %-14s %-6s %10s %7s %9s %8s %8s %6s %10s %9s  %s\n", "N", "B",
               "provider", "mode", "median_ms", "ci95%", "Mtok/s", "TFLOP/s", "GB/s", "%peak",
               "peak_mem", "rel_l2", "status");
  std::fflush(out_);
}

void Table::row(const PointResult& r) {
  header();
  const std::string n = format_count(r.point.n), b = std::to_string(r.point.b);
  std::string err = "-";
  if (r.verification.status == "passed" || r.verification.status == "failed") {
    double worst = 0;
    for (const auto& t : r.verification.tensors) worst = std::max(worst, t.rel_l2);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2e", worst);
    err = buf;
  }
  std::string status = r.status;
  if (r.verification.status == "failed") status += " (verify)";
  if (!r.reason.empty()) status += ": " + r.reason;
  if (r.point.repeat > 0) status += "  [repeat " + std::to_string(r.point.repeat) + "]";
  if (r.timed) {
    const double ci_pct = 100 * (r.timing.ci.hi - r.timing.ci.lo) / 2 / r.timing.ci.median;
    char peak[16] = "-";
    if (r.pct_peak_bandwidth >= 0) std::snprintf(peak, sizeof peak, "%.1f%%", r.pct_peak_bandwidth);
    std::fprintf(out_, "%6s %6s %-14s %-6s %10.4f %6.2f%% %9.3f %8.2f %8.1f %6s %10s %9s  %s\n",
                 n.c_str(), b.c_str(), r.point.provider.c_str(), mode_name(r.point.mode),
                 r.timing.ci.median, ci_pct, r.tokens_per_s / 1e6, r.tflop_per_s, r.gb_per_s, peak,
                 format_bytes(static_cast<double>(r.peak_bytes)).c_str(), err.c_str(),
                 status.c_str());
  } else {
    std::fprintf(out_, "%6s %6s %-14s %-6s %10s %7s %9s %8s %8s %6s %10s %9s  %s\n", n.c_str(),
                 b.c_str(), r.point.provider.c_str(), mode_name(r.point.mode), "-", "-", "-", "-",
                 "-", "-", format_bytes(static_cast<double>(r.peak_bytes)).c_str(), err.c_str(),
                 status.c_str());
  }
  std::fflush(out_);
}

void Table::verdicts(const std::vector<SweepVerdict>& verdicts) {
  if (verdicts.empty()) return;
  std::fprintf(out_,
               "\nconstant-throughput verdicts (PASS: max/min <= 1.10 and the slope's 95%% CI "
               "within +-0.03 per doubling of N):\n");
  for (const auto& v : verdicts) std::fprintf(out_, "  %s\n", verdict_line(v).c_str());
  std::fflush(out_);
}

Progress::Progress(bool enabled, int total_points)
    : active_(enabled && isatty(STDERR_FILENO)), total_(total_points) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::start_point(const Point& point) {
  label_ = "N=" + format_count(point.n) + " " + point.provider + " " + mode_name(point.mode);
  if (point.repeat > 0) label_ += " (repeat " + std::to_string(point.repeat) + ")";
  samples_ = 0;
  draw(true);
}

void Progress::sample(int samples_so_far) {
  samples_ = samples_so_far;
  draw(false);
}

void Progress::finish_point() {
  ++done_;
  finished_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::clear() {
  if (!active_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

void Progress::draw(bool force) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string eta = "?";
  if (done_ > 0) {
    eta = "~";
    eta += format_duration(finished_seconds_ / done_ * (total_ - done_));
  }
  std::fprintf(stderr, "\r\033[K[%d/%d] %s: %d samples | elapsed %s | left %s", done_ + 1, total_,
               label_.c_str(), samples_, format_duration(elapsed).c_str(), eta.c_str());
  std::fflush(stderr);
}

}  // namespace lightning::bench
