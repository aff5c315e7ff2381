// lightning-bench: command line parsing and validation. Every mistake becomes one line.
#include "cli.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <sstream>

#include <CLI/CLI.hpp>

namespace lightning::bench {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// Sequences longer than this are not a benchmark of anything real (and B*N*H*D would not fit).
constexpr std::int64_t kMaxSeqlen = std::int64_t{1} << 30;
constexpr std::size_t kMaxSeqlenCount = 4096;

}  // namespace

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kFwd:
      return "fwd";
    case Mode::kBwd:
      return "bwd";
    case Mode::kFwdBwd:
      return "fwdbwd";
  }
  return "?";
}

Mode parse_mode(const std::string& name) {
  const std::string n = lower(trim(name));
  if (n == "fwd") return Mode::kFwd;
  if (n == "bwd") return Mode::kBwd;
  if (n == "fwdbwd" || n == "fwd+bwd") return Mode::kFwdBwd;
  throw BadArgument("--modes: unknown mode '" + name + "' (known: fwd, bwd, fwdbwd)");
}

const char* timer_name(Timer timer) {
  return timer == Timer::kCupti ? "cupti" : "events";
}

const char* family_name(Family f) {
  switch (f) {
    case Family::kLinearBlocked:
      return "linear-blocked";
    case Family::kLinearRecurrent:
      return "linear-recurrent";
    case Family::kSoftmax:
      return "softmax";
  }
  return "?";
}

const std::vector<ProviderInfo>& provider_catalog() {
  static const std::vector<ProviderInfo> catalog = {
      {"lightning", true, Family::kLinearBlocked,
       "the production CUDA kernels (lightning::forward / lightning::backward)"},
      {"softmax-naive", true, Family::kSoftmax,
       "GPU reference: causal softmax attention materialising the N x N scores"},
      {"cumsum-linear", true, Family::kLinearRecurrent,
       "GPU reference: linear attention materialising every per-token D x E state"},
      {"recurrent", true, Family::kLinearRecurrent,
       "GPU reference: the sequential fp32 recurrence (the long-sequence oracle)"},
      {"cpu-lightning", false, Family::kLinearBlocked,
       "CPU (Eigen) blocked lightning attention in float32, outputs stored in --dtype"},
      {"cpu-softmax", false, Family::kSoftmax,
       "CPU (Eigen) causal softmax attention in float32, outputs stored in --dtype"},
  };
  return catalog;
}

const ProviderInfo& find_provider(const std::string& name) {
  for (const auto& p : provider_catalog()) {
    if (name == p.name) return p;
  }
  std::string known;
  for (const auto& p : provider_catalog()) known += std::string(known.empty() ? "" : ", ") + p.name;
  throw BadArgument("--providers: unknown provider '" + name + "' (known: " + known +
                    "; aliases: all, gpu, cpu)");
}

std::vector<std::string> default_gpu_providers() {
  std::vector<std::string> out;
  for (const auto& p : provider_catalog()) {
    if (p.gpu) out.push_back(p.name);
  }
  return out;
}

std::string apply_cpu_defaults(Options& o) {
  std::vector<std::string> changed;
  if (!o.was_given("--providers")) {
    o.providers = {"cpu-lightning", "cpu-softmax"};
    changed.push_back("providers cpu-lightning,cpu-softmax");
  }
  if (!o.was_given("--seqlens")) {
    o.seqlens_spec = "256..2k";
    o.seqlens = parse_seqlens(o.seqlens_spec);
    changed.push_back("seqlens 256..2k");
  }
  if (!o.was_given("--tokens") && !o.was_given("--batch")) {
    // 4k tokens keep the CPU sweep near a minute; never below the longest requested sequence.
    o.tokens = std::max<std::int64_t>(4096, o.seqlens.empty() ? 0 : o.seqlens.back());
    changed.push_back("tokens " + format_count(o.tokens));
  }
  if (!o.was_given("--heads")) {
    o.heads = 2;
    changed.push_back("heads 2");
  }
  if (!o.was_given("--dim")) {
    o.dim = 64;
    if (!o.was_given("--vdim")) o.vdim = 64;
    changed.push_back("dim 64");
  }
  // A shared CPU is noisier than a GPU: a looser noise target and a short per-point limit keep
  // the default CPU sweep near a minute (24 points).
  if (!o.was_given("--min-time")) o.min_time_s = 0.1;
  if (!o.was_given("--noise")) o.noise = 0.02;
  if (!o.was_given("--timeout")) o.timeout_s = 2.5;
  std::string out;
  for (const auto& c : changed) out += (out.empty() ? "" : ", ") + c;
  o.cpu_defaults = !changed.empty();
  return out;
}

std::vector<float> slopes_for(const std::string& decay, std::int64_t heads) {
  std::vector<float> s(static_cast<std::size_t>(heads), 0.0f);
  const std::string d = lower(trim(decay));
  if (d == "none") return s;
  if (d == "alibi") {
    // The official _build_slope_tensor: s_h = 2^(-8 (h + 1) / H).
    for (std::int64_t h = 0; h < heads; ++h) {
      s[static_cast<std::size_t>(h)] = static_cast<float>(
          std::exp2(-8.0 * static_cast<double>(h + 1) / static_cast<double>(heads)));
    }
    return s;
  }
  double value = 0;
  std::size_t used = 0;
  try {
    value = std::stod(d, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != d.size()) {
    throw BadArgument("--decay: expected alibi, none or a number s >= 0, got '" + decay + "'");
  }
  if (!std::isfinite(value) || value < 0) {
    throw BadArgument("--decay: the slope s must be finite and >= 0, got '" + decay + "'");
  }
  std::fill(s.begin(), s.end(), static_cast<float>(value));
  return s;
}

std::int64_t parse_count(const std::string& text, const std::string& flag) {
  const std::string t = lower(trim(text));
  if (t.empty()) throw BadArgument(flag + ": empty value");
  double multiplier = 1;
  std::string digits = t;
  if (t.back() == 'k') {
    multiplier = 1024;
    digits.pop_back();
  } else if (t.back() == 'm') {
    multiplier = 1024.0 * 1024.0;
    digits.pop_back();
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
      })) {
    throw BadArgument(
        flag + ": '" + text +
        "' is not a count (digits with an optional k or m suffix, e.g. 4096, 4k, 1m)");
  }
  double value = 0;
  try {
    value = std::stod(digits);
  } catch (const std::exception&) {
    throw BadArgument(flag + ": '" + text + "' is not a count");
  }
  const double total = value * multiplier;
  if (total != std::floor(total)) {
    throw BadArgument(flag + ": '" + text + "' is not a whole number");
  }
  if (total < 1) throw BadArgument(flag + ": must be >= 1, got '" + text + "'");
  if (total > 9.0e15) throw BadArgument(flag + ": '" + text + "' is too large");
  return static_cast<std::int64_t>(total);
}

std::string format_count(std::int64_t n) {
  constexpr std::int64_t kM = 1024 * 1024;
  if (n >= kM && n % kM == 0) return std::to_string(n / kM) + "m";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n / 1024) + "k";
  return std::to_string(n);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<std::int64_t> parse_seqlens(const std::string& spec) {
  const std::string flag = "--seqlens";
  const auto items = split_list(spec);
  if (items.empty()) throw BadArgument(flag + ": empty list");
  std::vector<std::int64_t> out;
  for (const auto& item : items) {
    const auto dots = item.find("..");
    if (dots == std::string::npos) {
      out.push_back(parse_count(item, flag));
    } else {
      std::string hi_text = item.substr(dots + 2);
      std::string step = "x2";
      if (const auto colon = hi_text.find(':'); colon != std::string::npos) {
        step = lower(trim(hi_text.substr(colon + 1)));
        hi_text = hi_text.substr(0, colon);
      }
      const std::int64_t lo = parse_count(item.substr(0, dots), flag);
      const std::int64_t hi = parse_count(hi_text, flag);
      if (lo > hi) {
        throw BadArgument(flag + ": range '" + item + "' decreases (" + format_count(lo) + " > " +
                          format_count(hi) + "); write the smaller length first");
      }
      if (step.empty() || (step[0] != 'x' && step[0] != '*' && step[0] != '+')) {
        throw BadArgument(flag + ": step '" + step + "' in '" + item +
                          "' must be xF (multiply, e.g. x4) or +A (add, e.g. +1k)");
      }
      const bool multiply = step[0] != '+';
      const std::int64_t by = parse_count(step.substr(1), flag);
      if (multiply && by < 2) {
        throw BadArgument(flag + ": factor in '" + item + "' must be >= 2");
      }
      for (std::int64_t v = lo;;) {
        out.push_back(v);
        if (out.size() > kMaxSeqlenCount) {
          throw BadArgument(flag + ": '" + spec + "' expands to more than " +
                            std::to_string(kMaxSeqlenCount) + " lengths");
        }
        if (multiply ? v > hi / by : v > hi - by) break;  // the next value would pass hi
        v = multiply ? v * by : v + by;
      }
    }
  }
  for (auto v : out) {
    if (v > kMaxSeqlen) {
      throw BadArgument(flag + ": " + format_count(v) + " is longer than the supported " +
                        format_count(kMaxSeqlen));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

constexpr const char* kDescription =
    "lightning-bench: sweep Lightning Attention providers over sequence lengths at a fixed token\n"
    "budget (B = tokens / N, so memory stays fixed) and test the claim of constant throughput.\n"
    "Each point: allocate (tracked), fill (seeded), optionally verify against a reference\n"
    "(DESIGN.md section 5 rules 1 and 2), then time (cold L2, CUDA events, until the median is\n"
    "stable). Without a GPU the same command runs the CPU providers at small sizes.";

constexpr const char* kFooter =
    "Providers: lightning, softmax-naive, cumsum-linear, recurrent (GPU); cpu-lightning,\n"
    "cpu-softmax (CPU). Aliases: all, gpu, cpu.\n"
    "Verdict (per provider and mode): PASS when max/min of the per-length median tokens/s is\n"
    "<= 1.10 and the 95% CI of the least-squares slope of log2(tokens/s) per doubling of N lies\n"
    "within +-0.03.\n"
    "Exit status: 0 every point ok or skipped; 1 a point failed (error or verification);\n"
    "2 bad arguments; 130 interrupted by Ctrl-C, 143 by SIGTERM (the report keeps every finished\n"
    "point).\n"
    "Examples:\n"
    "  lightning-bench --seqlens 1k..128k --verify --repeat 3 --json report.json\n"
    "  lightning-bench --providers lightning --modes fwd --seqlens 1k..16k:x4 --profile\n"
    "  lightning-bench --providers cpu --seqlens 256,913,1k --tokens 2k --heads 2 --dim 64";

}  // namespace

CliResult parse_command_line(int argc, const char* const* argv) {
  CliResult result;
  Options& o = result.options;
  for (int i = 0; i < argc; ++i) o.argv.emplace_back(argv[i]);

  CLI::App app{kDescription, "lightning-bench"};
  app.footer(kFooter);
  app.get_formatter()->column_width(34);

  std::string seqlens = o.seqlens_spec, tokens = "128k", batch, dtype = "bf16", layout = "bhnd",
              providers, modes = "fwd,bwd,fwdbwd", timer = "events";
  app.add_option("--seqlens", seqlens,
                 "sequence lengths N: a range lo..hi (doubling), lo..hi:xF (multiplying by F), "
                 "lo..hi:+A (adding A), or a comma list, mixed freely; k = 1024, m = 1024^2 "
                 "[default 1k..128k; 256..2k without a GPU]")
      ->type_name("SPEC");
  app.add_option("--tokens", tokens,
                 "token budget per step: B = tokens / N (floor), so memory stays fixed "
                 "[default 128k; 4k without a GPU]")
      ->type_name("COUNT");
  app.add_option("--batch", batch, "fix the batch B instead of the token budget")
      ->type_name("COUNT");
  app.add_option("--heads", o.heads, "heads H [default 32; 2 without a GPU]")->type_name("H");
  app.add_option("--dim", o.dim, "head dim D of q and k: 64 or 128 [default 128; 64 without a GPU]")
      ->type_name("D");
  app.add_option("--vdim", o.vdim, "head dim E of v and o: 64 or 128 [default: --dim]")
      ->type_name("E");
  app.add_option("--dtype", dtype, "storage dtype of q, k, v, o and gradients: bf16, fp16, fp32")
      ->type_name("T")
      ->capture_default_str();
  app.add_option("--layout", layout,
                 "memory layout of activations: bhnd ([B,H,N,D], the official kernel's) or "
                 "bnhd ([B,N,H,D], a projection's)")
      ->type_name("L")
      ->capture_default_str();
  app.add_option("--decay", o.decay,
                 "per-head slopes s (lambda = exp(-s)): alibi (s_h = 2^(-8(h+1)/H)), none (s = "
                 "0), or one value for every head")
      ->type_name("D")
      ->capture_default_str();
  app.add_option("--scale", o.scale, "the scale of o = scale * q S (all providers)")
      ->capture_default_str();
  app.add_option("--providers", providers,
                 "comma list of providers (see below) [default: every GPU provider; "
                 "cpu-lightning,cpu-softmax without a GPU]")
      ->type_name("LIST");
  app.add_option("--modes", modes, "comma list of passes to time: fwd, bwd, fwdbwd")
      ->type_name("LIST")
      ->capture_default_str();
  app.add_flag("--warm", o.warm,
               "keep L2 warm between samples (default: cold, an L2-sized buffer is cleared "
               "before each sample, outside the timed region)");
  app.add_option("--min-samples", o.min_samples, "minimum timed samples per point")
      ->capture_default_str();
  app.add_option("--max-samples", o.max_samples, "maximum timed samples per point")
      ->capture_default_str();
  app.add_option("--min-time", o.min_time_s,
                 "minimum total timed seconds per point [default 0.2; 0.1 without a GPU]")
      ->type_name("SECONDS");
  app.add_option("--noise", o.noise,
                 "stop sampling when the relative standard error of the median is below this "
                 "(after --min-samples and --min-time) [default 0.005; 0.02 without a GPU]");
  app.add_option("--timeout", o.timeout_s,
                 "per-point limit on sampling, in wall seconds (the point keeps what it has) "
                 "[default 10; 2.5 without a GPU]")
      ->type_name("SECONDS");
  app.add_option("--throttle", o.throttle,
                 "a sample whose SM clock is below this fraction of the device's maximum clock is "
                 "discarded and counted")
      ->capture_default_str();
  app.add_option("--timer", timer,
                 "events: CUDA events around each sample; cupti: CUPTI activity records, the sum "
                 "of kernel execution intervals (launch gaps excluded); events are kept too")
      ->type_name("T")
      ->capture_default_str();
  app.add_flag("--profile", o.profile,
               "run each point once (one sample, no statistics) inside NVTX ranges, for Nsight");
  app.add_option("--device", o.device, "CUDA device index")->capture_default_str();
  app.add_flag("--list-devices", o.list_devices, "list the CUDA devices and exit");
  app.add_option("--seed", o.seed, "seed of the input fill")->capture_default_str();
  app.add_option("--peak-bandwidth", o.peak_bandwidth_gbps,
                 "GB/s used for '% of peak' [default: the device's datasheet peak]")
      ->type_name("GBPS");
  app.add_flag("--verify", o.verify,
               "before timing, check outputs (and gradients) against a reference under DESIGN.md "
               "section 5 rules 1 and 2; a failed check marks the point failed");
  app.add_option("--verify-heads", o.verify_heads,
                 "(b, h) pairs checked per point (the first, the last, then seeded random ones); "
                 "0 = all")
      ->capture_default_str();
  app.add_option("--verify-budget", o.verify_budget_gflop,
                 "GFLOP of CPU float64 reference work (per length and direction, fwd or bwd) "
                 "above which the GPU fp32 recurrence oracle is the reference (linear "
                 "attention) or the check is skipped (softmax)")
      ->type_name("GFLOP")
      ->capture_default_str();
  app.add_option("--json", o.json_path,
                 "write the JSON report here (rewritten atomically after every point)")
      ->type_name("PATH");
  app.add_option("--repeat", o.repeat,
                 "run the sweep K times; repeats after the first run their points shuffled")
      ->type_name("K")
      ->capture_default_str();
  bool no_progress = false, no_table = false;
  app.add_flag("--no-progress", no_progress, "no progress line on stderr");
  app.add_flag("--no-table", no_table, "no table on stdout (summary verdicts only)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    result.action = CliResult::Action::kExit;
    result.exit_code = 0;
    result.message = app.help();
    return result;
  } catch (const CLI::ParseError& e) {
    result.action = CliResult::Action::kExit;
    result.exit_code = 2;
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    result.message = "lightning-bench: error: " + what + " (see --help)";
    result.to_stderr = true;
    return result;
  }

  for (const char* flag : {"--seqlens", "--tokens", "--batch", "--heads", "--dim", "--vdim",
                           "--dtype", "--layout", "--decay", "--scale", "--providers", "--modes",
                           "--min-time", "--min-samples", "--noise", "--timeout"}) {
    if (app.count(flag) > 0) o.given.insert(flag);
  }
  o.progress = !no_progress;
  o.table = !no_table;

  try {
    o.seqlens_spec = seqlens;
    o.seqlens = parse_seqlens(seqlens);
    o.tokens = parse_count(tokens, "--tokens");
    if (!batch.empty()) o.batch = parse_count(batch, "--batch");
    if (o.heads < 1 || o.heads > 65536) {
      throw BadArgument("--heads: must be in 1..65536, got " + std::to_string(o.heads));
    }
    if (!o.was_given("--vdim")) o.vdim = o.dim;
    for (auto [flag, value] : {std::pair<const char*, std::int64_t>{"--dim", o.dim},
                               std::pair<const char*, std::int64_t>{"--vdim", o.vdim}}) {
      if (value != 64 && value != 128) {
        throw BadArgument(std::string(flag) + " " + std::to_string(value) +
                          ": unsupported head dim (the kernels support 64 and 128)");
      }
    }
    const std::string dt = lower(trim(dtype));
    if (dt != "bf16" && dt != "fp16" && dt != "fp32") {
      throw BadArgument("--dtype: unknown dtype '" + dtype + "' (known: bf16, fp16, fp32)");
    }
    o.dtype = parse_dtype(dt);
    const std::string ly = lower(trim(layout));
    if (ly != "bhnd" && ly != "bnhd") {
      throw BadArgument("--layout: unknown layout '" + layout + "' (known: bhnd, bnhd)");
    }
    o.layout = parse_layout(ly);
    (void)slopes_for(o.decay, 1);  // validates the spelling
    if (!std::isfinite(o.scale)) throw BadArgument("--scale: must be finite");

    o.providers.clear();
    const auto provider_items = split_list(providers);
    if (app.count("--providers") > 0 && provider_items.empty()) {
      throw BadArgument("--providers: empty list");
    }
    for (const auto& name : provider_items) {
      std::vector<std::string> names;
      if (name == "all" || name == "gpu" || name == "cpu") {
        for (const auto& p : provider_catalog()) {
          if (name == "all" || p.gpu == (name == "gpu")) names.push_back(p.name);
        }
      } else {
        names.push_back(find_provider(name).name);
      }
      for (const auto& n : names) {
        if (std::find(o.providers.begin(), o.providers.end(), n) == o.providers.end()) {
          o.providers.push_back(n);
        }
      }
    }
    if (o.providers.empty()) o.providers = default_gpu_providers();

    o.modes.clear();
    const auto mode_items = split_list(modes);
    if (mode_items.empty()) throw BadArgument("--modes: empty list");
    for (const auto& m : mode_items) {
      const Mode mode = parse_mode(m);
      if (std::find(o.modes.begin(), o.modes.end(), mode) == o.modes.end()) o.modes.push_back(mode);
    }

    if (o.min_samples < 1) throw BadArgument("--min-samples: must be >= 1");
    if (o.max_samples < o.min_samples) {
      throw BadArgument("--max-samples: must be >= --min-samples (" +
                        std::to_string(o.min_samples) + ")");
    }
    if (!(o.min_time_s >= 0)) throw BadArgument("--min-time: must be >= 0");
    if (!(o.noise > 0)) throw BadArgument("--noise: must be > 0");
    if (!(o.timeout_s > 0)) throw BadArgument("--timeout: must be > 0");
    if (!(o.throttle >= 0 && o.throttle < 1)) throw BadArgument("--throttle: must be in [0, 1)");
    const std::string tm = lower(trim(timer));
    if (tm == "events") {
      o.timer = Timer::kEvents;
    } else if (tm == "cupti") {
      o.timer = Timer::kCupti;
    } else {
      throw BadArgument("--timer: unknown timer '" + timer + "' (known: events, cupti)");
    }
    if (o.device < 0) throw BadArgument("--device: must be >= 0");
    if (!(o.peak_bandwidth_gbps >= 0)) throw BadArgument("--peak-bandwidth: must be >= 0");
    if (o.verify_heads < 0) throw BadArgument("--verify-heads: must be >= 0");
    if (!(o.verify_budget_gflop >= 0)) throw BadArgument("--verify-budget: must be >= 0");
    if (o.repeat < 1) throw BadArgument("--repeat: must be >= 1");
    if (o.profile) {
      o.min_samples = 1;
      o.max_samples = 1;
    }
  } catch (const BadArgument& e) {
    result.action = CliResult::Action::kExit;
    result.exit_code = 2;
    result.message = std::string("lightning-bench: error: ") + e.what();
    result.to_stderr = true;
    return result;
  } catch (const std::exception& e) {  // parse_dtype / parse_layout
    result.action = CliResult::Action::kExit;
    result.exit_code = 2;
    result.message = std::string("lightning-bench: error: ") + e.what();
    result.to_stderr = true;
    return result;
  }
  return result;
}

}  // namespace lightning::bench
