// lightning-bench: the sweep. For each planned point: allocate (tracked), fill (seeded), verify,
// time, record; the report is rewritten after every point; SIGINT or SIGTERM stops after the
// current sample and keeps every finished point.
#pragma once

#include "options.h"

namespace lightning::bench {

// Runs the whole tool on parsed options; returns the exit status (0 ok, 1 a point failed,
// 130 interrupted by SIGINT, 143 by SIGTERM). Throws BadArgument for problems found only now (e.g.
// N > tokens).
int run_sweep(Options& options);

}  // namespace lightning::bench
