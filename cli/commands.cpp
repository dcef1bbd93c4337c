#include "cli/commands.h"

#include <cstddef>
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
      {"split-server", "serve the top blocks for split clients (long-running, TLS)",
       split_server_parser, run_split_server},
      {"aggregator", "run a federation's rounds for its sites (long-running, TLS)",
       aggregator_parser, run_aggregator},
      {"client", "take part in a federation as a hospital site (TLS)", client_parser, run_client},
      {"ca init", "create the federation's certificate authority", ca_init_parser, run_ca_init},
      {"ca issue", "issue a node's key and certificate (client, split-server, aggregator)",
       ca_issue_parser, run_ca_issue},
      {"ca revoke", "revoke a node's certificate (re-signs the CRL)", ca_revoke_parser,
       run_ca_revoke},
      {"ca refresh-crl", "re-sign the CRL before it expires", ca_refresh_crl_parser,
       run_ca_refresh_crl},
      {"export-peft", "write an adapter in Hugging Face PEFT's layout", export_peft_parser,
       run_export_peft},
      {"audit", "what a curious split server can recover from a site's activations", audit_parser,
       run_audit},
      {"merge-adapters", "merge a split run's site and split-server adapters into one GGUF LoRA",
       merge_adapters_parser, run_merge_adapters},
      {"privacy epsilon", "epsilon of client-level DP after T rounds (RDP accountant)", privacy_epsilon_parser,
       run_privacy_epsilon},
      {"privacy noise", "the noise multiplier that keeps T rounds within an epsilon budget", privacy_noise_parser,
       run_privacy_noise},
      {"plot", "one metrics.csv column of several simulate runs in one chart", plot_parser, run_plot},
      {"tokenize", "the token ids a model's tokenizer gives a text (GGUF or tokenizer.json)",
       tokenize_parser, run_tokenize},
      {"convert", "a Hugging Face checkpoint (safetensors) as a GGUF model", convert_parser,
       run_convert},
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
    name.resize(18, ' ');
    text += name + c.summary + "\n";
  }
  text += "\nRun `cleave <command> --help` for a command's options.\n";
  return text;
}

std::string group_usage(const std::string& group) {
  std::string text;
  for (const Command& c : commands()) {
    if (c.name.rfind(group + " ", 0) != 0) continue;
    std::string name = "  " + c.name;
    name.resize(18, ' ');
    text += name + c.summary + "\n";
  }
  if (text.empty()) return "";
  return "usage: cleave " + group + " <command> [options]\n\ncommands:\n" + text +
         "\nRun `cleave " + group + " <command> --help` for a command's options.\n";
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
  // "ca init": a command of a group takes two words.
  const Command* command = args.size() >= 2 ? find_command(args[0] + " " + args[1]) : nullptr;
  const size_t words = command ? 2 : 1;
  if (!command) command = find_command(args[0]);
  if (!command && !group_usage(args[0]).empty()) {
    const bool help = args.size() >= 2 && (args[1] == "--help" || args[1] == "-h");
    (help ? std::cout : err) << group_usage(args[0]);
    return help ? 0 : 2;
  }
  if (!command) {
    err << "cleave: error: unknown command '" << args[0] << "'\n\n" << main_usage();
    return 2;
  }
  const std::string prefix = "cleave " + command->name + ": error: ";
  const ArgParser parser = command->parser();
  try {
    const ParsedArgs parsed = parser.parse({args.begin() + static_cast<std::ptrdiff_t>(words), args.end()});
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
