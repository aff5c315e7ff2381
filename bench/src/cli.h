// lightning-bench: the command line (CLI11) and the small parsers behind it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace lightning::bench {

// "4096", "4k" (x1024), "1m" (x1024^2), "1.5k"; case-insensitive suffix. The value must be a
// whole number >= 1. `flag` names the option in the error message.
std::int64_t parse_count(const std::string& text, const std::string& flag);

// "1k..128k" (doubling), "1k..16k:x4" (multiplying), "1k..8k:+1k" (adding), "1000,4096,913"
// (a list), and lists of those ("256..1k,913"). Returns ascending unique values. Throws
// BadArgument with one line naming the problem (a decreasing range, a zero, a bad suffix, ...).
std::vector<std::int64_t> parse_seqlens(const std::string& spec);

// 131072 -> "128k", 1048576 -> "1m", 913 -> "913".
std::string format_count(std::int64_t n);

// A comma list, items trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& text);

// What main does with the command line.
struct CliResult {
  enum class Action { kRun, kExit } action = Action::kRun;
  int exit_code = 0;    // for kExit
  std::string message;  // for kExit: what to print (help on stdout, or one error line on stderr)
  bool to_stderr = false;
  Options options;
};

// Parse and validate. Never throws: errors come back as kExit with exit code 2 and one line.
CliResult parse_command_line(int argc, const char* const* argv);

}  // namespace lightning::bench
