#include "secure/openssl_handles.h"

#include <openssl/err.h>

namespace cleave::secure {

std::string drain_openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(code, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text.empty() ? std::string("no OpenSSL error recorded") : text;
}

void throw_openssl_error(const std::string& what) {
  throw std::runtime_error(what + ": " + drain_openssl_errors());
}

}  // namespace cleave::secure
