#include "cli/secure_channels.h"

#include <map>

#include "cli/config.h"
#include "metrics/registry.h"
#include "secure/pem_files.h"
#include "secure/tls_channel.h"
#include "transport/zmq_channel.h"

namespace cleave::cli {

secure::TlsIdentity tls_identity(const SecureConfig& config) {
  secure::TlsIdentity identity;
  identity.cert_path = config.cert;
  identity.key_path = config.key;
  identity.ca_path = config.ca;
  if (!config.crl.empty()) identity.crl_path = config.crl;
  return identity;
}

namespace {

// TLS adds framing and record overhead to each message; the ZeroMQ limit
// leaves room for it above the application limit.
net::ChannelOptions zmq_options(size_t max_message_bytes) {
  net::ChannelOptions options;
  options.max_message_bytes = secure::inner_message_bytes(max_message_bytes);
  return options;
}

secure::SecureChannelOptions tls_options(const SecureConfig& config, std::set<secure::NodeRole> roles,
                                         size_t max_message_bytes, const Log& log) {
  secure::SecureChannelOptions options;
  options.identity = tls_identity(config);
  options.allowed_peer_roles = std::move(roles);
  options.handshake_timeout = secure::Millis(config.handshake_timeout_ms);
  options.max_message_bytes = max_message_bytes;
  options.log = log;
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string("secure: ") + e.what());
  }
  return options;
}

}  // namespace

std::function<void(const std::string& reason)> handshake_refusal_counter(metrics::Registry& registry) {
  std::map<std::string, metrics::Counter*> refused;
  for (const std::string& reason : secure::handshake_refusal_reasons()) {
    refused[reason] = &registry.counter("cleave_tls_handshakes_refused_total",
                                        "TLS handshakes this service refused, by reason.", {{"reason", reason}});
  }
  return [refused](const std::string& reason) {
    const auto counter = refused.find(reason);
    if (counter != refused.end()) counter->second->inc();
  };
}

std::unique_ptr<net::ServerChannel> bind_service(const std::string& endpoint, const SecureConfig& tls,
                                                 secure::PeerPolicy policy, size_t max_message_bytes,
                                                 const Log& log, metrics::Registry* registry) {
  std::unique_ptr<net::ServerChannel> plain = net::zmq_bind(endpoint, zmq_options(max_message_bytes));
  if (tls.insecure) {
    secure::warn_insecure(plain->endpoint(), log);
    return plain;
  }
  secure::SecureChannelOptions options = tls_options(tls, policy.roles, max_message_bytes, log);
  options.on_revoked = policy.on_revoked;
  if (registry) options.on_handshake_refused = handshake_refusal_counter(*registry);
  auto server = std::make_unique<secure::SecureServerChannel>(std::move(plain), std::move(options));
  return secure::guard_server_channel(std::move(server), std::move(policy), log);
}

std::unique_ptr<net::ClientChannel> connect_service(const std::string& endpoint, const SecureConfig& tls,
                                                    secure::NodeRole server_role, const std::string& server_name,
                                                    size_t max_message_bytes, const Log& log) {
  std::unique_ptr<net::ClientChannel> plain = net::zmq_connect(endpoint, zmq_options(max_message_bytes));
  if (tls.insecure) {
    secure::warn_insecure(endpoint, log);
    return plain;
  }
  secure::SecureChannelOptions options = tls_options(tls, {server_role}, max_message_bytes, log);
  if (!server_name.empty()) options.expected_peer_name = server_name;
  return secure::retryable_client_channel(
      std::make_unique<secure::SecureClientChannel>(std::move(plain), std::move(options)));
}

std::string certificate_name(const std::string& cert_path) {
  secure::X509Ptr cert = secure::read_certificate(cert_path);
  std::string why;
  const std::optional<secure::PeerIdentity> identity = secure::identity_of(cert.get(), &why);
  if (!identity) {
    throw std::runtime_error(cert_path + ": names no cleave node (" + why + "): issue it with `cleave ca issue`");
  }
  return identity->node_id;
}

std::string node_id(const std::string& configured, const SecureConfig& tls, const std::string& fallback) {
  if (tls.insecure) return configured.empty() ? fallback : configured;
  const std::string name = certificate_name(tls.cert);
  if (!configured.empty() && configured != name) {
    throw ConfigError("the configured id '" + configured + "' differs from the name in " + tls.cert + " ('" +
                      name + "'): services only accept messages whose id is the sender's certificate name; "
                      "leave the id out or issue a certificate for '" + configured + "'");
  }
  return name;
}

}  // namespace cleave::cli
