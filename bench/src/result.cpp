#include "result.h"

#include <algorithm>
#include <cstdio>

#include "cli.h"
#include "table.h"

namespace lightning::bench {

std::vector<SweepVerdict> compute_verdicts(const Options& options,
                                           const std::vector<PointResult>& results,
                                           const VerdictCriteria& criteria) {
  std::vector<SweepVerdict> out;
  for (const auto& provider : options.providers) {
    for (const Mode mode : options.modes) {
      SweepVerdict v;
      v.provider = provider;
      v.mode = mode;
      v.seqlens_planned = options.seqlens;
      std::vector<VerdictSample> samples;
      std::int64_t mem_min = -1, mem_max = -1;
      for (const auto& r : results) {
        if (r.point.provider != provider || r.point.mode != mode) continue;
        if (r.status == "ok" && r.timed) {
          ++v.points_ok;
          samples.push_back({r.point.n, r.tokens_per_s});
          if (r.peak_bytes >= 0) {
            mem_min = mem_min < 0 ? r.peak_bytes : std::min(mem_min, r.peak_bytes);
            mem_max = std::max(mem_max, r.peak_bytes);
          }
        } else if (r.status == "skipped") {
          ++v.points_skipped;
        } else {
          ++v.points_failed;
        }
      }
      v.verdict = constant_throughput_verdict(samples, criteria);
      v.complete = v.verdict.seqlens.size() == options.seqlens.size();
      v.peak_bytes_max = mem_max;
      v.peak_bytes_max_min_ratio =
          mem_min > 0 ? static_cast<double>(mem_max) / static_cast<double>(mem_min) : 0;
      if (v.points_ok + v.points_skipped + v.points_failed > 0) out.push_back(std::move(v));
    }
  }
  return out;
}

std::string verdict_line(const SweepVerdict& v) {
  std::string line =
      v.verdict.verdict + " " + v.provider + " " + mode_name(v.mode) + ": " + v.verdict.reason;
  line += " [" + std::to_string(v.verdict.seqlens.size()) + " of " +
          std::to_string(v.seqlens_planned.size()) + " lengths";
  if (!v.verdict.seqlens.empty()) {
    line += ", " + format_count(v.verdict.seqlens.front()) + ".." +
            format_count(v.verdict.seqlens.back());
  }
  if (v.peak_bytes_max >= 0) {
    char mem[96];
    std::snprintf(mem, sizeof mem, ", peak memory %s, max/min %.2f",
                  format_bytes(static_cast<double>(v.peak_bytes_max)).c_str(),
                  v.peak_bytes_max_min_ratio);
    line += mem;
  }
  if (v.points_skipped) line += ", " + std::to_string(v.points_skipped) + " skipped";
  if (v.points_failed) line += ", " + std::to_string(v.points_failed) + " failed";
  line += "]";
  return line;
}

}  // namespace lightning::bench
