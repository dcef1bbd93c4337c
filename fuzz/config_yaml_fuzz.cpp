// libFuzzer target: bytes as the YAML configuration of every command that
// reads one: cleave train (parse_config), simulate, split-server, aggregator
// and client. Only the parsing functions run: nothing is written, loaded or
// started. A bad file must be refused with ConfigError (naming the source,
// line and key); a crash, a sanitizer report, another exception (yaml-cpp's
// own included), a hang or an allocation beyond -rss_limit_mb is a finding.
// An accepted configuration must write back (to_yaml) as YAML that reads
// back without error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/config.h"
#include "cli/config_services.h"

namespace {

using namespace cleave::cli;

template <class Parse>
void parse_as(const std::string& text, Parse parse) {
  try {
    const auto config = parse(text, "fuzz.yaml", {});
    try {
      (void)parse(to_yaml(config), "fuzz.resolved.yaml", {});
    } catch (const ConfigError&) {
      __builtin_trap();  // what was accepted must read back
    }
  } catch (const ConfigError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  parse_as(text, parse_config);
  parse_as(text, parse_simulate_config);
  parse_as(text, parse_split_server_config);
  parse_as(text, parse_aggregator_config);
  parse_as(text, parse_client_config);
  return 0;
}
