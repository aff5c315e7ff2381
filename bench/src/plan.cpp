#include "plan.h"

#include <algorithm>
#include <random>

#include "cli.h"

namespace lightning::bench {

std::int64_t batch_for(const Options& options, std::int64_t n) {
  if (options.batch > 0) return options.batch;
  const std::int64_t b = options.tokens / n;
  if (b < 1) {
    throw BadArgument("--seqlens: N = " + format_count(n) + " exceeds the token budget --tokens " +
                      format_count(options.tokens) +
                      " (B = tokens / N would be 0); raise --tokens or set --batch");
  }
  return b;
}

std::vector<Point> make_plan(const Options& options) {
  std::vector<Point> one;
  for (const std::int64_t n : options.seqlens) {
    const std::int64_t b = batch_for(options, n);
    for (const auto& provider : options.providers) {
      for (const Mode mode : options.modes) {
        Point p;
        p.n = n;
        p.b = b;
        p.provider = provider;
        p.mode = mode;
        one.push_back(p);
      }
    }
  }
  std::vector<Point> plan;
  plan.reserve(one.size() * static_cast<std::size_t>(options.repeat));
  for (int r = 0; r < options.repeat; ++r) {
    std::vector<Point> round = one;
    if (r > 0) {
      std::mt19937_64 rng(options.seed * 1000003u + static_cast<std::uint64_t>(r));
      std::shuffle(round.begin(), round.end(), rng);
    }
    for (auto& p : round) {
      p.repeat = r;
      p.index = static_cast<int>(plan.size());
      plan.push_back(p);
    }
  }
  return plan;
}

}  // namespace lightning::bench
