// The report: atomic writes, the JSON of points and verdicts (NaN never reaches the file).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "report.h"

namespace lightning::bench {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Report, WritesAtomicallyAndReplacesTheOldFile) {
  const std::string path = ::testing::TempDir() + "bench_report_test.json";
  write_file_atomically(path, "{\"a\": 1}\n");
  EXPECT_EQ(slurp(path), "{\"a\": 1}\n");
  write_file_atomically(path, "{\"a\": 2}\n");
  EXPECT_EQ(slurp(path), "{\"a\": 2}\n");
  std::remove(path.c_str());
}

TEST(Report, NamesTheFolderWhenItCannotWrite) {
  EXPECT_THROW(write_file_atomically("/nonexistent-folder/x.json", "{}"), std::runtime_error);
}

PointResult timed_point() {
  PointResult r;
  r.point.n = 1024;
  r.point.b = 4;
  r.point.provider = "cpu-lightning";
  r.timed = true;
  r.timing.samples_ms = {1.0, 1.1, 0.9, 1.0, 1.05, 0.95};
  r.timing.ci = median_ci(r.timing.samples_ms);
  r.timing.summary = summarize(r.timing.samples_ms);
  r.timing.noise = std::numeric_limits<double>::quiet_NaN();
  r.tokens_per_s = 4096 / 1e-3;
  r.peak_bytes = 12345;
  return r;
}

TEST(Report, APointCarriesItsTimingThroughputAndMemory) {
  const auto j = point_json(timed_point());
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["tokens"], 4096);
  EXPECT_EQ(j["timing"]["samples"], 6);
  EXPECT_EQ(j["timing"]["samples_ms"].size(), 6u);
  EXPECT_TRUE(j["timing"]["noise"].is_null());  // NaN becomes null
  EXPECT_EQ(j["memory"]["peak_bytes"], 12345);
  EXPECT_TRUE(j["verification"].is_null());
  EXPECT_TRUE(j["throughput"]["pct_peak_bandwidth"].is_null());
}

TEST(Report, ASkippedPointHasAReasonAndNoTiming) {
  PointResult r;
  r.point.provider = "softmax-naive";
  r.status = "skipped";
  r.reason = "out of memory";
  const auto j = point_json(r);
  EXPECT_EQ(j["status"], "skipped");
  EXPECT_EQ(j["reason"], "out of memory");
  EXPECT_TRUE(j["timing"].is_null());
  EXPECT_TRUE(j["memory"]["peak_bytes"].is_null());
}

TEST(Report, VerdictsSummariseEachProviderAndMode) {
  Options o;
  o.seqlens = {1024, 2048, 4096};
  o.providers = {"cpu-lightning"};
  o.modes = {Mode::kFwd};
  std::vector<PointResult> results;
  for (auto n : o.seqlens) {
    auto r = timed_point();
    r.point.n = n;
    r.point.mode = Mode::kFwd;
    results.push_back(r);
  }
  const auto verdicts = compute_verdicts(o, results);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].verdict.verdict, "PASS");
  EXPECT_TRUE(verdicts[0].complete);
  const auto j = summary_json(results, verdicts);
  EXPECT_EQ(j["counts"]["ok"], 3);
  EXPECT_EQ(j["verdicts"][0]["verdict"], "PASS");
  EXPECT_EQ(j["verdicts"][0]["peak_bytes_max_min_ratio"], 1.0);
  EXPECT_NE(verdict_line(verdicts[0]).find("3 of 3 lengths"), std::string::npos);
}

TEST(Report, ToolInfoAlwaysHasAShaAndItsSource) {
  const auto t = tool_info();
  EXPECT_FALSE(t.git_sha.empty());
  EXPECT_TRUE(t.git_sha_source == "runtime" || t.git_sha_source == "configure" ||
              t.git_sha_source == "none");
}

}  // namespace
}  // namespace lightning::bench
