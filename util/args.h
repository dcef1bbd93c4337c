// Command-line flags for the `cleave` subcommands and the benches, parsed by
// CLI11 (args.cpp; its headers stay out of this one). Every input is a
// declared flag ("--name value", "--name=value", a short alias like "-n");
// each default is written once, where the flag is declared, and --help shows
// it; an unknown flag is an error that suggests the closest declared one.
//
//   ArgParser parser("cleave generate", "--model FILE --prompt TEXT", "Continues the prompt.");
//   parser.value("--n-predict", "N", "new tokens at most", "-n").defaults_to(SamplingOptions{}.max_new_tokens)
//       .toggle("--verbose", "say more");
//   const ParsedArgs args = parser.parse({"-n", "12"});
//   args.get_int("--n-predict");   // 12; 64 (the declared default) when absent
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cleave {

// Wrong command line: unknown flag, missing value, bad number. The caller
// prints it with the usage and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ParsedArgs {
 public:
  bool help() const { return help_; }
  // Given on the command line (a declared default does not count).
  bool has(const std::string& flag) const;
  // The last value given, else the declared default, else none.
  std::optional<std::string> get(const std::string& flag) const;
  std::string require(const std::string& flag) const;             // UsageError if there is none
  // Every value given, in order; else the declared default alone; else none.
  std::vector<std::string> all(const std::string& flag) const;
  // get() as a number: UsageError when there is no value or it is not one.
  int64_t get_int(const std::string& flag) const;
  double get_double(const std::string& flag) const;
  bool get_switch(const std::string& flag) const { return has(flag); }

 private:
  friend class ArgParser;
  // A flag the parser never declared is a programming error (std::logic_error).
  void check_declared(const std::string& flag) const;

  bool help_ = false;
  std::set<std::string> declared_;
  std::map<std::string, std::string> defaults_;
  std::map<std::string, std::vector<std::string>> values_;
};

class ArgParser {
 public:
  // `program` is what the usage line starts with ("cleave generate",
  // "split_step_bench"); `synopsis` follows it.
  ArgParser(std::string program, std::string synopsis, std::string description);

  // A flag that takes a value; `alias` is an optional short form ("-n").
  ArgParser& value(const std::string& flag, const std::string& value_name, const std::string& help,
                   const std::string& alias = "");
  // The value of the flag declared last when it is not given; --help shows it.
  template <typename T>
  ArgParser& defaults_to(const T& value) {
    std::ostringstream text;
    text << value;
    return defaults_to_text(text.str());
  }
  ArgParser& defaults_to(const std::string& value) { return defaults_to_text(value); }
  ArgParser& defaults_to(const char* value) { return defaults_to_text(value); }
  // A flag without a value.
  ArgParser& toggle(const std::string& flag, const std::string& help);

  // Throws UsageError for anything undeclared or malformed. --help / -h sets help().
  ParsedArgs parse(const std::vector<std::string>& args) const;
  // argv as main() has it (argv[0], the program, is skipped).
  ParsedArgs parse(int argc, const char* const* argv) const;
  std::string usage() const;
  const std::string& program() const { return program_; }

 private:
  struct Flag {
    std::string name, alias, value_name, help;
    bool takes_value = false;
    std::optional<std::string> fallback;
  };
  ArgParser& defaults_to_text(const std::string& value);
  struct Cli;         // the flags as a CLI11 app (args.cpp)
  Cli build() const;

  std::string program_, synopsis_, description_;
  std::vector<Flag> flags_;
};

// main() of a program with its own flags (the benches): parses argv and calls
// `run`. --help prints the usage on stdout and returns 0; a UsageError prints
// "PROGRAM: error: ..." and the usage on stderr and returns 2; any other
// exception "PROGRAM: error: ..." and returns 1.
int run_with_flags(const ArgParser& parser, int argc, const char* const* argv,
                   const std::function<int(const ParsedArgs&)>& run);

}  // namespace cleave
