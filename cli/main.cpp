// The `cleave` binary: every subcommand is in cli/; this only hands over argv.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int status = cleave::cli::run_main(args, std::cerr);
  std::cout.flush();
  return status;
}
