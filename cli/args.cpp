#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace cleave::cli {

std::optional<std::string> ParsedArgs::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string ParsedArgs::require(const std::string& flag) const {
  const std::optional<std::string> v = get(flag);
  if (!v) throw UsageError("missing " + flag);
  return *v;
}

std::vector<std::string> ParsedArgs::all(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string ParsedArgs::get_or(const std::string& flag, const std::string& fallback) const {
  return get(flag).value_or(fallback);
}

int64_t ParsedArgs::get_int(const std::string& flag, int64_t fallback) const {
  const std::optional<std::string> v = get(flag);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || errno != 0 || *end != '\0') {
    throw UsageError(flag + " expects an integer, got '" + *v + "'");
  }
  return n;
}

double ParsedArgs::get_double(const std::string& flag, double fallback) const {
  const std::optional<std::string> v = get(flag);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || errno != 0 || *end != '\0' || !std::isfinite(x)) {
    throw UsageError(flag + " expects a number, got '" + *v + "'");
  }
  return x;
}

ArgParser::ArgParser(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

ArgParser& ArgParser::value(const std::string& flag, const std::string& value_name,
                            const std::string& help, const std::string& alias) {
  flags_.push_back({flag, alias, value_name, help, true});
  return *this;
}

ArgParser& ArgParser::toggle(const std::string& flag, const std::string& help) {
  flags_.push_back({flag, "", "", help, false});
  return *this;
}

const ArgParser::Flag* ArgParser::find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name || (!f.alias.empty() && f.alias == name)) return &f;
  }
  return nullptr;
}

ParsedArgs ArgParser::parse(const std::vector<std::string>& args) const {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help_ = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      throw UsageError("unexpected argument '" + arg + "' (every input is given with a flag)");
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const Flag* flag = find(name);
    if (!flag) throw UsageError("unknown flag " + name);
    if (!flag->takes_value) {
      if (eq != std::string::npos) throw UsageError(flag->name + " takes no value");
      parsed.values_[flag->name].push_back("");
      continue;
    }
    if (eq != std::string::npos) {
      parsed.values_[flag->name].push_back(arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      parsed.values_[flag->name].push_back(args[++i]);
    } else {
      throw UsageError(flag->name + " needs a value (" + flag->value_name + ")");
    }
  }
  return parsed;
}

std::string ArgParser::usage() const {
  std::string text = "usage: cleave " + command_ + " " + synopsis_ + "\n\n" + description_ + "\n";
  if (flags_.empty()) return text;
  text += "\noptions:\n";
  for (const Flag& f : flags_) {
    std::string left = "  " + (f.alias.empty() ? "" : f.alias + ", ") + f.name;
    if (f.takes_value) left += " " + f.value_name;
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    text += left + f.help + "\n";
  }
  text += "  -h, --help                show this help\n";
  return text;
}

}  // namespace cleave::cli
