// The YAML side of the configuration: reading a Fields description from YAML
// text with --set overrides applied, and writing one back out. Only config.cpp
// uses this; everything else sees the option structs of config.h.
#pragma once

#include <functional>
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

}  // namespace cleave::cli
