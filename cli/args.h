// A small command-line flag parser for the `cleave` subcommands: declared
// flags only ("--name value", "--name=value", a short alias like "-n"),
// generated usage text, strict number parsing.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cleave::cli {

// Wrong command line: unknown flag, missing value, bad number. main() prints
// it with the command's usage and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ParsedArgs {
 public:
  bool help() const { return help_; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::optional<std::string> get(const std::string& flag) const;  // the last value given
  std::string require(const std::string& flag) const;             // UsageError if absent
  std::vector<std::string> all(const std::string& flag) const;    // every value, in order
  std::string get_or(const std::string& flag, const std::string& fallback) const;
  int64_t get_int(const std::string& flag, int64_t fallback) const;
  double get_double(const std::string& flag, double fallback) const;
  bool get_switch(const std::string& flag) const { return has(flag); }

 private:
  friend class ArgParser;
  bool help_ = false;
  std::map<std::string, std::vector<std::string>> values_;
};

class ArgParser {
 public:
  ArgParser(std::string command, std::string synopsis, std::string description);
  // A flag that takes a value; `alias` is an optional short form ("-n").
  ArgParser& value(const std::string& flag, const std::string& value_name, const std::string& help,
                   const std::string& alias = "");
  // A flag without a value.
  ArgParser& toggle(const std::string& flag, const std::string& help);

  // Throws UsageError for anything undeclared or malformed. --help / -h sets help().
  ParsedArgs parse(const std::vector<std::string>& args) const;
  std::string usage() const;
  const std::string& command() const { return command_; }

 private:
  struct Flag {
    std::string name, alias, value_name, help;
    bool takes_value;
  };
  const Flag* find(const std::string& name) const;

  std::string command_, synopsis_, description_;
  std::vector<Flag> flags_;
};

}  // namespace cleave::cli
