// lightning-bench: the sweep plan. Sequence lengths x providers x modes, repeated; B = tokens / N.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace lightning::bench {

struct Point {
  int index = 0;   // position in the run order
  int repeat = 0;  // 0-based
  std::int64_t n = 0, b = 0;
  std::string provider;
  Mode mode = Mode::kFwd;
};

// B for sequence length n: --batch when given, else floor(tokens / n). Throws BadArgument when
// that is 0 (n longer than the token budget).
std::int64_t batch_for(const Options& options, std::int64_t n);

// Repeat 0 runs lengths ascending, then providers in the order given, then modes: so the
// reference of one length is computed once and shared. Later repeats run the same points in a
// shuffled order (seeded by --seed and the repeat), so slow drift cannot masquerade as a trend
// in N. Throws BadArgument for a length with B = 0.
std::vector<Point> make_plan(const Options& options);

}  // namespace lightning::bench
