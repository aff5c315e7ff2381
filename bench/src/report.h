// lightning-bench: the JSON report (schema: reports/schema/report.schema.json). One document per
// run, rewritten atomically (temporary file + rename) after every finished point, so an interrupt
// or a crash keeps every finished point and a reader never sees half a file.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.h"
#include "result.h"

namespace lightning::bench {

inline constexpr const char* kReportSchemaName = "lightning-bench-report";
// Bump on any change a reader could notice; the schema's const must follow.
inline constexpr int kReportSchemaVersion = 1;

struct ToolInfo {
  std::string version;         // the lightning library's
  std::string git_sha;         // short sha, "unknown" when neither source knows it
  std::string git_sha_source;  // runtime (git rev-parse in the source tree) | configure | none
  int git_dirty = -1;          // 1 dirty, 0 clean, -1 unknown
  std::string build_type;
  bool cuda_build = false;
  std::string compiler;
};
ToolInfo tool_info();

std::string iso8601_utc_now();

nlohmann::json tool_json(const ToolInfo& tool);
nlohmann::json options_json(const Options& options);
nlohmann::json host_json();
nlohmann::json model_json();
nlohmann::json point_json(const PointResult& result);
nlohmann::json verdict_json(const SweepVerdict& verdict);
nlohmann::json summary_json(const std::vector<PointResult>& results,
                            const std::vector<SweepVerdict>& verdicts);

// Write `content` to `path` via a temporary file in the same folder and rename(2).
// Throws std::runtime_error naming the path on failure.
void write_file_atomically(const std::string& path, const std::string& content);

class ReportWriter {
 public:
  explicit ReportWriter(std::string path) : path_(std::move(path)) {}
  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  nlohmann::json& document() { return doc_; }
  // Rewrite the file now (no-op when disabled).
  void write() const;

 private:
  std::string path_;
  nlohmann::json doc_ = nlohmann::json::object();
};

}  // namespace lightning::bench
