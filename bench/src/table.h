// lightning-bench: the human side of the output. A table on stdout, one row per finished point,
// the verdict lines at the end; a progress line with an estimate of the time left on stderr when
// stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "result.h"

namespace lightning::bench {

std::string format_bytes(double bytes);       // "4.00 GiB", "512 MiB", "-" for < 0
std::string format_duration(double seconds);  // "45s", "3m07s", "1h02m"

class Table {
 public:
  explicit Table(std::FILE* out) : out_(out) {}
  void header();
  void row(const PointResult& r);
  void verdicts(const std::vector<SweepVerdict>& verdicts);

 private:
  std::FILE* out_;
  bool header_done_ = false;
};

class Progress {
 public:
  // Draws only when `enabled` and stderr is a terminal.
  Progress(bool enabled, int total_points);
  void start_point(const Point& point);
  void sample(int samples_so_far);  // redraws at most ~10 times a second
  void finish_point();
  void clear();  // erase the line (before anything else is printed)
  bool active() const { return active_; }

 private:
  void draw(bool force);
  bool active_ = false;
  int total_ = 0, done_ = 0, samples_ = 0;
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  double finished_seconds_ = 0;
};

}  // namespace lightning::bench
