// The subcommands of the `cleave` binary. Each command lives in its own file
// (train_command.cpp, ...) and is listed in commands.cpp; main.cpp dispatches.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cli/args.h"

namespace cleave::cli {

struct Command {
  std::string name;
  std::string summary;                 // one line for `cleave --help`
  ArgParser (*parser)();               // the command's flags and help
  int (*run)(const ParsedArgs& args);  // returns the exit status (0 ok)
};

// Every command, in the order `cleave --help` lists them.
const std::vector<Command>& commands();
const Command* find_command(const std::string& name);
std::string main_usage();

ArgParser train_parser();
int run_train(const ParsedArgs& args);
ArgParser eval_parser();
int run_eval(const ParsedArgs& args);
ArgParser generate_parser();
int run_generate(const ParsedArgs& args);
ArgParser demo_parser();
int run_demo(const ParsedArgs& args);
ArgParser simulate_parser();
int run_simulate(const ParsedArgs& args);

// Runs `cleave <argv...>` as main() does: parses, dispatches, catches every
// exception and prints it as "cleave <cmd>: error: <message>" on `err`.
// Returns the exit status: 0 ok, 2 usage or configuration error, 1 failure.
int run_main(const std::vector<std::string>& args, std::ostream& err);

}  // namespace cleave::cli
