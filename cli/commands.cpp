#include "cli/commands.h"

#include <exception>
#include <iostream>

#include "cli/config.h"

namespace cleave::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"train", "fine-tune LoRA adapters on a frozen base model (YAML config)", train_parser,
       run_train},
      {"eval", "held-out perplexity of a model, with or without an adapter", eval_parser,
       run_eval},
      {"generate", "generate text from a model, with or without an adapter", generate_parser,
       run_generate},
      {"demo", "built-in end-to-end run on generated data (no downloads)", demo_parser,
       run_demo},
      {"simulate", "simulated federated fleet in one process (YAML config, or built-in)",
       simulate_parser, run_simulate},
  };
  return kCommands;
}

const Command* find_command(const std::string& name) {
  for (const Command& c : commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string main_usage() {
  std::string text =
      "usage: cleave <command> [options]\n\n"
      "Split federated LoRA fine-tuning of Llama-family models.\n\ncommands:\n";
  for (const Command& c : commands()) {
    std::string name = "  " + c.name;
    name.resize(14, ' ');
    text += name + c.summary + "\n";
  }
  text += "\nRun `cleave <command> --help` for a command's options.\n";
  return text;
}

int run_main(const std::vector<std::string>& args, std::ostream& err) {
  if (args.empty()) {
    err << main_usage();
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << main_usage();
    return 0;
  }
  const Command* command = find_command(args[0]);
  if (!command) {
    err << "cleave: error: unknown command '" << args[0] << "'\n\n" << main_usage();
    return 2;
  }
  const std::string prefix = "cleave " + command->name + ": error: ";
  const ArgParser parser = command->parser();
  try {
    const ParsedArgs parsed = parser.parse({args.begin() + 1, args.end()});
    if (parsed.help()) {
      std::cout << parser.usage();
      return 0;
    }
    return command->run(parsed);
  } catch (const UsageError& e) {
    std::cout.flush();
    err << prefix << e.what() << "\n\n" << parser.usage();
    return 2;
  } catch (const ConfigError& e) {
    std::cout.flush();
    err << prefix << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cout.flush();
    err << prefix << e.what() << "\n";
    return 1;
  } catch (...) {
    err << prefix << "unknown exception\n";
    return 1;
  }
}

}  // namespace cleave::cli
