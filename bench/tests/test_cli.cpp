// The command line: seqlen specs, counts, and the one-line errors of bad arguments.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli.h"

namespace lightning::bench {
namespace {

using Lengths = std::vector<std::int64_t>;

TEST(ParseSeqlens, DoublesAPowerOfTwoRange) {
  EXPECT_EQ(parse_seqlens("1k..128k"),
            (Lengths{1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072}));
}

TEST(ParseSeqlens, MultipliesByAGivenFactor) {
  EXPECT_EQ(parse_seqlens("1k..16k:x4"), (Lengths{1024, 4096, 16384}));
  EXPECT_EQ(parse_seqlens("1k..20k:x4"), (Lengths{1024, 4096, 16384}));
}

TEST(ParseSeqlens, AddsAGivenStep) {
  EXPECT_EQ(parse_seqlens("1k..4k:+1k"), (Lengths{1024, 2048, 3072, 4096}));
}

TEST(ParseSeqlens, TakesListsSortedAndUnique) {
  EXPECT_EQ(parse_seqlens("1000,4096,913"), (Lengths{913, 1000, 4096}));
  EXPECT_EQ(parse_seqlens("256..1k, 913, 1k"), (Lengths{256, 512, 913, 1024}));
}

TEST(ParseSeqlens, AcceptsSuffixesInAnyCase) {
  EXPECT_EQ(parse_seqlens("1M"), (Lengths{1048576}));
  EXPECT_EQ(parse_seqlens("1.5k"), (Lengths{1536}));
  EXPECT_EQ(parse_seqlens("1"), (Lengths{1}));
}

TEST(ParseSeqlens, RejectsMistakesWithOneLine) {
  for (const char* bad : {"128k..1k", "", "0", "4q", "1k..4k:x1", "1k..4k:y2", "1.3", "-5", ","}) {
    try {
      parse_seqlens(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const BadArgument& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find("--seqlens"), std::string::npos) << what;
    }
  }
}

TEST(ParseSeqlens, RejectsADecreasingRangeNamingIt) {
  try {
    parse_seqlens("128k..1k");
    FAIL();
  } catch (const BadArgument& e) {
    EXPECT_NE(std::string(e.what()).find("decreases"), std::string::npos) << e.what();
  }
}

TEST(FormatCount, UsesTheLargestExactSuffix) {
  EXPECT_EQ(format_count(131072), "128k");
  EXPECT_EQ(format_count(1048576), "1m");
  EXPECT_EQ(format_count(913), "913");
  EXPECT_EQ(format_count(1536), "1536");
}

CliResult parse(std::vector<const char*> args) {
  args.insert(args.begin(), "lightning-bench");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(CommandLine, DefaultsAreTheStandardSweep) {
  const auto r = parse({});
  ASSERT_EQ(r.action, CliResult::Action::kRun) << r.message;
  const Options& o = r.options;
  EXPECT_EQ(o.tokens, 131072);
  EXPECT_EQ(o.heads, 32);
  EXPECT_EQ(o.dim, 128);
  EXPECT_EQ(o.vdim, 128);
  EXPECT_EQ(o.dtype, DType::kBF16);
  EXPECT_EQ(o.seqlens.size(), 8u);
  EXPECT_EQ(o.providers, default_gpu_providers());
  EXPECT_EQ(o.modes.size(), 3u);
}

TEST(CommandLine, ParsesEveryKindOfValue) {
  const auto r =
      parse({"--seqlens", "256..1k", "--tokens",    "2k",      "--heads", "4",        "--dim",
             "64",        "--vdim",  "128",         "--dtype", "fp16",    "--layout", "bnhd",
             "--decay",   "0.5",     "--providers", "cpu",     "--modes", "fwd,bwd",  "--verify",
             "--repeat",  "3",       "--timer",     "cupti",   "--warm"});
  ASSERT_EQ(r.action, CliResult::Action::kRun) << r.message;
  const Options& o = r.options;
  EXPECT_EQ(o.tokens, 2048);
  EXPECT_EQ(o.vdim, 128);
  EXPECT_EQ(o.dtype, DType::kFP16);
  EXPECT_EQ(o.layout, Layout::kBNHD);
  EXPECT_EQ(o.providers, (std::vector<std::string>{"cpu-lightning", "cpu-softmax"}));
  EXPECT_EQ(o.modes, (std::vector<Mode>{Mode::kFwd, Mode::kBwd}));
  EXPECT_TRUE(o.verify);
  EXPECT_TRUE(o.warm);
  EXPECT_EQ(o.timer, Timer::kCupti);
  EXPECT_EQ(o.repeat, 3);
  EXPECT_TRUE(o.was_given("--seqlens"));
  EXPECT_FALSE(o.was_given("--batch"));
}

TEST(CommandLine, BadArgumentsExitNonZeroWithOneLine) {
  const std::vector<std::vector<const char*>> bad = {
      {"--seqlens", "128k..1k"}, {"--dim", "96"},
      {"--tokens", "0"},         {"--providers", "nope"},
      {"--vdim", "32"},          {"--dtype", "fp8"},
      {"--layout", "nhbd"},      {"--decay", "-1"},
      {"--timer", "wall"},       {"--min-samples", "0"},
      {"--repeat", "0"},         {"--nope"},
      {"--heads", "0"},          {"--throttle", "1.5"},
      {"--modes", ""},           {"--max-samples", "2", "--min-samples", "5"},
  };
  for (const auto& args : bad) {
    const auto r = parse(args);
    EXPECT_EQ(r.action, CliResult::Action::kExit) << args[0];
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_TRUE(r.to_stderr);
    EXPECT_EQ(r.message.find('\n'), std::string::npos) << r.message;
    EXPECT_FALSE(r.message.empty());
  }
}

TEST(CommandLine, HelpDocumentsEveryFlag) {
  const auto r = parse({"--help"});
  ASSERT_EQ(r.action, CliResult::Action::kExit);
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--seqlens",      "--tokens",        "--batch",        "--heads",       "--dim",
        "--vdim",         "--dtype",         "--layout",       "--decay",       "--scale",
        "--providers",    "--modes",         "--warm",         "--min-samples", "--max-samples",
        "--min-time",     "--noise",         "--timeout",      "--throttle",    "--timer",
        "--profile",      "--device",        "--list-devices", "--seed",        "--verify",
        "--verify-heads", "--verify-budget", "--json",         "--repeat",      "--no-progress",
        "--no-table",     "--peak-bandwidth"}) {
    EXPECT_NE(r.message.find(flag), std::string::npos) << flag;
  }
}

TEST(CpuDefaults, ReplaceOnlyWhatWasNotGiven) {
  auto r = parse({"--heads", "4"});
  ASSERT_EQ(r.action, CliResult::Action::kRun);
  const std::string changed = apply_cpu_defaults(r.options);
  EXPECT_FALSE(changed.empty());
  EXPECT_EQ(r.options.heads, 4);
  EXPECT_EQ(r.options.tokens, 4096);
  EXPECT_EQ(r.options.dim, 64);
  EXPECT_EQ(r.options.providers, (std::vector<std::string>{"cpu-lightning", "cpu-softmax"}));
  EXPECT_EQ(r.options.seqlens, (Lengths{256, 512, 1024, 2048}));
}

TEST(Slopes, AlibiIsTheOfficialFormulaAndNoneIsZero) {
  const auto s = slopes_for("alibi", 8);
  ASSERT_EQ(s.size(), 8u);
  EXPECT_FLOAT_EQ(s[0], 0.5f);        // 2^(-8/8)
  EXPECT_FLOAT_EQ(s[7], 1.0f / 256);  // 2^(-8)
  for (float x : slopes_for("none", 3)) EXPECT_EQ(x, 0.0f);
  EXPECT_FLOAT_EQ(slopes_for("0.25", 2)[1], 0.25f);
  EXPECT_THROW(slopes_for("fast", 2), BadArgument);
}

}  // namespace
}  // namespace lightning::bench
