// lightning-bench: the sweep CLI. See --help, DESIGN.md section 6 and issue 6.
#include <cstdio>
#include <exception>
#include <iostream>

#include "cli.h"
#include "runner.h"

int main(int argc, char** argv) {
  using namespace lightning::bench;
  CliResult cli = parse_command_line(argc, argv);
  if (cli.action == CliResult::Action::kExit) {
    if (cli.to_stderr) {
      std::fprintf(stderr, "%s\n", cli.message.c_str());
    } else {
      std::fputs(cli.message.c_str(), stdout);
    }
    return cli.exit_code;
  }
  try {
    return run_sweep(cli.options);
  } catch (const BadArgument& e) {
    std::fprintf(stderr, "lightning-bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lightning-bench: error: %s\n", e.what());
    return 1;
  }
}
