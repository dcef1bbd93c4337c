#include "secure/tls_channel.h"

namespace cleave::secure {

std::string insecure_warning(const std::string& endpoint) {
  return "insecure: true: traffic on " + endpoint + " is NOT encrypted or authenticated";
}

void warn_insecure(const std::string& endpoint, const Log& log) { log.warning(insecure_warning(endpoint)); }

}  // namespace cleave::secure
