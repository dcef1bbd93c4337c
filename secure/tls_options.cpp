#include "secure/tls_options.h"

#include "secure/pem_files.h"
#include "transport/channel.h"

namespace cleave::secure {

void SecureChannelOptions::validate() const {
  auto require_file = [](const std::string& field, const std::string& path) {
    if (path.empty()) throw std::invalid_argument("TLS option " + field + " is empty");
    if (!file_exists(path)) {
      throw std::invalid_argument("TLS option " + field + " = " + path +
                                  " does not exist: issue node files with `cleave ca issue`");
    }
  };
  require_file("cert_path", identity.cert_path);
  require_file("key_path", identity.key_path);
  require_file("ca_path", identity.ca_path);
  if (identity.crl_path) require_file("crl_path", *identity.crl_path);
  if (allowed_peer_roles.empty()) {
    throw std::invalid_argument(
        "allowed_peer_roles is empty: name the roles that may connect (client, split-server, "
        "aggregator)");
  }
  if (handshake_timeout.count() <= 0) {
    throw std::invalid_argument("handshake_timeout must be positive");
  }
  if (max_message_bytes == 0) throw std::invalid_argument("max_message_bytes must be positive");
  if (max_sessions == 0) throw std::invalid_argument("max_sessions must be positive");
  if (max_handshakes == 0) throw std::invalid_argument("max_handshakes must be positive");
}

void SecureChannelOptions::check_message_size(uint64_t bytes, const std::string& destination) const {
  if (bytes > max_message_bytes) {
    throw net::TransportError("a message of " + std::to_string(bytes) + " bytes to " + destination +
                              " is above max_message_bytes (" + std::to_string(max_message_bytes) +
                              "): not sent");
  }
}

const std::vector<std::string>& handshake_refusal_reasons() {
  static const std::vector<std::string> reasons = {"expired", "revoked", "untrusted", "not_a_node", "role",
                                                   "name",    "not_tls", "tls",       "timeout",    "evicted"};
  return reasons;
}

}  // namespace cleave::secure
