// The YAML side of the configuration: reading a Fields description from YAML
// text with --set overrides applied, and writing one back out, plus what the
// readers of every configuration file share. Only config.cpp and
// config_services.cpp use this; everything else sees the option structs of
// config.h and config_services.h.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/config.h"
#include "cli/config_fields.h"

namespace cleave::cli {

// Parses `yaml_text`, applies the overrides, checks that every key is one
// `visit_root` declares (recursively) and that every value has its type, and
// lets `visit_root` read the values. Errors are ConfigError naming `source`
// (with the line) or the --set, and the key's dotted path.
void read_yaml(const std::string& yaml_text, const std::string& source,
               const std::vector<Override>& overrides,
               const std::function<void(Fields&)>& visit_root);

// Every field `visit_root` declares, with its current value, as block YAML.
std::string write_yaml(const std::function<void(Fields&)>& visit_root);

// The text of the configuration file at `path`; a ConfigError when it cannot
// be read.
std::string read_config_file(const std::string& path);

// Runs `check` (an option struct's validate()) and turns its
// std::invalid_argument into a ConfigError naming `source`.
template <typename Check>
void invalid_to_config_error(const std::string& source, Check check) {
  try {
    check();
  } catch (const std::invalid_argument& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

// The files built on `cleave train`'s sections (RunConfig, SimulateConfig,
// ClientFile): the RunConfig inside one, and how it declares its keys.
// train.seed is declared as a signed number so that a negative seed is
// refused instead of wrapping around to a huge unsigned one.
inline RunConfig& run_part(RunConfig& config) { return config; }
template <typename Config>
RunConfig& run_part(Config& config) {
  return config.run;
}
template <typename Config>
using RunVisit = void (*)(Fields& f, Config& config, int64_t& seed);

// train.seed as read; a ConfigError naming `source` when it is negative.
uint64_t checked_train_seed(int64_t seed, const std::string& source);

// Reads such a file: its RunConfig names `source` and starts from
// `output_dir` (output.dir's default for the command); then validates.
template <typename Config>
Config parse_run_based(const std::string& yaml_text, const std::string& source,
                       const std::vector<Override>& overrides, const std::string& output_dir,
                       RunVisit<Config> visit) {
  Config config;
  RunConfig& run = run_part(config);
  run.source = source;
  run.output_dir = output_dir;
  int64_t seed = static_cast<int64_t>(run.seed);
  read_yaml(yaml_text, source, overrides, [&](Fields& f) { visit(f, config, seed); });
  run.seed = checked_train_seed(seed, source);
  config.validate();
  return config;
}

// Such a file as YAML that parse_run_based reads back to the same values.
template <typename Config>
std::string write_run_based(const Config& config, RunVisit<Config> visit) {
  Config copy = config;
  int64_t seed = static_cast<int64_t>(run_part(copy).seed);
  return write_yaml([&](Fields& f) { visit(f, copy, seed); });
}

}  // namespace cleave::cli
