// The subcommands of the `cleave` binary. Each command lives in its own file
// (train_command.cpp, ...) and is listed in commands.cpp; main.cpp dispatches.
// A name with a space ("ca init") is a command of a group: `cleave ca init`.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "util/args.h"

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
// The commands of a group ("ca": ca init, ca issue, ...); "" if there is none.
std::string group_usage(const std::string& group);

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
ArgParser split_server_parser();
int run_split_server(const ParsedArgs& args);
ArgParser aggregator_parser();
int run_aggregator(const ParsedArgs& args);
ArgParser client_parser();
int run_client(const ParsedArgs& args);
ArgParser ca_init_parser();
int run_ca_init(const ParsedArgs& args);
ArgParser ca_issue_parser();
int run_ca_issue(const ParsedArgs& args);
ArgParser ca_revoke_parser();
int run_ca_revoke(const ParsedArgs& args);
ArgParser ca_refresh_crl_parser();
int run_ca_refresh_crl(const ParsedArgs& args);
ArgParser export_peft_parser();
int run_export_peft(const ParsedArgs& args);
ArgParser audit_parser();
int run_audit(const ParsedArgs& args);
ArgParser merge_adapters_parser();
int run_merge_adapters(const ParsedArgs& args);
ArgParser privacy_epsilon_parser();
int run_privacy_epsilon(const ParsedArgs& args);
ArgParser privacy_noise_parser();
int run_privacy_noise(const ParsedArgs& args);
ArgParser plot_parser();
int run_plot(const ParsedArgs& args);
ArgParser tokenize_parser();
int run_tokenize(const ParsedArgs& args);
ArgParser convert_parser();
int run_convert(const ParsedArgs& args);

// Runs `cleave <argv...>` as main() does: parses, dispatches, catches every
// exception and prints it as "cleave <cmd>: error: <message>" on `err`.
// Returns the exit status: 0 ok, 2 usage or configuration error, 1 failure.
int run_main(const std::vector<std::string>& args, std::ostream& err);

}  // namespace cleave::cli
