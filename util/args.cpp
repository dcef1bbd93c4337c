#include "util/args.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "util/closest_name.h"

namespace cleave {
namespace {

// The help's pieces in cleave's layout: "usage: PROGRAM SYNOPSIS", the
// description, then "options:" with "-n, --n-predict N   help (default: 64)".
class UsageFormatter : public CLI::Formatter {
 public:
  UsageFormatter(std::string program, std::string synopsis)
      : program_(std::move(program)), synopsis_(std::move(synopsis)) {
    column_width(28);
  }
  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode mode) const override {
    const std::string& description = app->get_description();
    return "usage: " + program_ + (synopsis_.empty() ? "" : " " + synopsis_) + "\n" +
           (description.empty() ? "" : "\n" + description + "\n") + make_groups(app, mode);
  }
  std::string make_option_name(const CLI::Option* option, bool) const override {
    std::string names = option->get_name(false, true);  // "-n,--n-predict"
    const size_t comma = names.find(',');
    return comma == std::string::npos ? names : names.replace(comma, 1, ", ");
  }
  std::string make_option_opts(const CLI::Option* option) const override {
    return option->get_type_size() == 0 ? "" : " " + option->get_type_name();
  }
  std::string make_option_desc(const CLI::Option* option) const override {
    const std::string& fallback = option->get_default_str();
    return option->get_description() + (fallback.empty() ? "" : " (default: " + fallback + ")");
  }

 private:
  std::string program_, synopsis_;
};

// Help text with its continuation lines indented by CLI11, not by hand.
std::string unindented(const std::string& help) {
  std::string text;
  bool line_start = false;
  for (char c : help) {
    if (line_start && c == ' ') continue;
    line_start = c == '\n';
    text += c;
  }
  return text;
}

std::string without_dashes(const std::string& flag) {
  return flag.substr(std::min(flag.find_first_not_of('-'), flag.size()));
}

}  // namespace

void ParsedArgs::check_declared(const std::string& flag) const {
  if (declared_.count(flag) == 0) throw std::logic_error("flag " + flag + " was never declared");
}

bool ParsedArgs::has(const std::string& flag) const {
  check_declared(flag);
  return values_.count(flag) > 0;
}

std::optional<std::string> ParsedArgs::get(const std::string& flag) const {
  check_declared(flag);
  auto it = values_.find(flag);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  auto fallback = defaults_.find(flag);
  if (fallback != defaults_.end()) return fallback->second;
  return std::nullopt;
}

std::string ParsedArgs::require(const std::string& flag) const {
  const std::optional<std::string> v = get(flag);
  if (!v) throw UsageError("missing " + flag);
  return *v;
}

std::vector<std::string> ParsedArgs::all(const std::string& flag) const {
  check_declared(flag);
  auto it = values_.find(flag);
  if (it != values_.end()) return it->second;
  auto fallback = defaults_.find(flag);
  if (fallback != defaults_.end()) return {fallback->second};
  return {};
}

int64_t ParsedArgs::get_int(const std::string& flag) const {
  const std::string v = require(flag);
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || errno != 0 || *end != '\0') {
    throw UsageError(flag + " expects an integer, got '" + v + "'");
  }
  return n;
}

double ParsedArgs::get_double(const std::string& flag) const {
  const std::string v = require(flag);
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || errno != 0 || *end != '\0' || !std::isfinite(x)) {
    throw UsageError(flag + " expects a number, got '" + v + "'");
  }
  return x;
}

ArgParser::ArgParser(std::string program, std::string synopsis, std::string description)
    : program_(std::move(program)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

ArgParser& ArgParser::value(const std::string& flag, const std::string& value_name,
                            const std::string& help, const std::string& alias) {
  Flag f;
  f.name = flag;
  f.alias = alias;
  f.value_name = value_name;
  f.help = help;
  f.takes_value = true;
  flags_.push_back(std::move(f));
  return *this;
}

ArgParser& ArgParser::defaults_to_text(const std::string& value) {
  if (flags_.empty() || !flags_.back().takes_value) {
    throw std::logic_error("defaults_to follows the declaration of a flag that takes a value");
  }
  flags_.back().fallback = value;
  return *this;
}

ArgParser& ArgParser::toggle(const std::string& flag, const std::string& help) {
  Flag f;
  f.name = flag;
  f.help = help;
  flags_.push_back(std::move(f));
  return *this;
}

// The flags as a CLI11 app: each option keeps every value given, in order,
// and nothing is converted (ParsedArgs converts on request).
struct ArgParser::Cli {
  std::unique_ptr<CLI::App> app;
  std::vector<CLI::Option*> options;  // flags_[i]'s is options[i]
  CLI::Option* help = nullptr;
};

ArgParser::Cli ArgParser::build() const {
  Cli cli;
  cli.app = std::make_unique<CLI::App>(description_, program_);
  cli.app->formatter(std::make_shared<UsageFormatter>(program_, synopsis_));
  cli.app->set_help_flag();
  cli.app->allow_extras();
  cli.app->option_defaults()->group("options");
  for (const Flag& f : flags_) {
    const std::string spelling = f.alias.empty() ? f.name : f.alias + "," + f.name;
    CLI::Option* option = nullptr;
    if (f.takes_value) {
      option = cli.app->add_option(spelling)
                   ->description(unindented(f.help))
                   ->type_name(f.value_name)
                   ->expected(1)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      if (f.fallback) option->default_str(*f.fallback);
    } else {
      option = cli.app->add_flag(spelling)->description(unindented(f.help))->disable_flag_override();
    }
    cli.options.push_back(option);
  }
  cli.help = cli.app->add_flag("-h,--help", "show this help");
  return cli;
}

ParsedArgs ArgParser::parse(const std::vector<std::string>& args) const {
  Cli cli = build();
  ParsedArgs parsed;
  for (const Flag& f : flags_) {
    parsed.declared_.insert(f.name);
    if (f.fallback) parsed.defaults_[f.name] = *f.fallback;
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    cli.app->parse(reversed);
  } catch (const CLI::ArgumentMismatch& e) {
    // CLI11 says "--model: 1 required FILE missing" for "--model" with nothing
    // after it, "verbose was given a disallowed flag override" for "--verbose=1".
    const std::string message = e.what();
    auto starts_with = [&](const std::string& prefix) { return message.rfind(prefix, 0) == 0; };
    for (size_t i = 0; i < flags_.size(); ++i) {
      const Flag& f = flags_[i];
      if (starts_with(cli.options[i]->get_name() + ": ")) {
        throw UsageError(f.name + " needs a value (" + f.value_name + ")");
      }
      for (const std::string& name : {f.name, f.alias}) {
        if (!name.empty() && starts_with(without_dashes(name) + " was given")) {
          throw UsageError(f.name + " takes no value");
        }
      }
    }
    throw UsageError(message);
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  parsed.help_ = cli.help->count() > 0;
  const std::vector<std::string> extras = cli.app->remaining();
  if (!extras.empty() && !parsed.help_) {
    const std::string& arg = extras.front();
    if (arg.size() < 2 || arg[0] != '-') {
      throw UsageError("unexpected argument '" + arg + "' (every input is given with a flag)");
    }
    const std::string name = arg.substr(0, arg.find('='));
    std::vector<std::string> known;
    for (const Flag& f : flags_) known.push_back(without_dashes(f.name));
    const std::string suggestion = closest_name(without_dashes(name), known);
    throw UsageError("unknown flag " + name + (suggestion.empty() ? "" : " (did you mean --" + suggestion + "?)"));
  }
  for (size_t i = 0; i < flags_.size(); ++i) {
    const CLI::Option* option = cli.options[i];
    if (option->count() == 0) continue;
    std::vector<std::string>& values = parsed.values_[flags_[i].name];
    if (flags_[i].takes_value) {
      values = option->results();
    } else {
      values.assign(option->count(), "");
    }
  }
  return parsed;
}

ParsedArgs ArgParser::parse(int argc, const char* const* argv) const {
  return parse(std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
}

std::string ArgParser::usage() const {
  return build().app->help();
}

int run_with_flags(const ArgParser& parser, int argc, const char* const* argv,
                   const std::function<int(const ParsedArgs&)>& run) {
  const std::string prefix = parser.program() + ": error: ";
  try {
    const ParsedArgs args = parser.parse(argc, argv);
    if (args.help()) {
      std::cout << parser.usage();
      return 0;
    }
    return run(args);
  } catch (const UsageError& e) {
    std::cout.flush();
    std::cerr << prefix << e.what() << "\n\n" << parser.usage();
    return 2;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << prefix << e.what() << "\n";
    return 1;
  }
}

}  // namespace cleave
