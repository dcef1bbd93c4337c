#include "cli/secure_channels.h"

#include <algorithm>
#include <chrono>

#include "cli/config.h"
#include "secure/pem_files.h"
#include "secure/tls_channel.h"
#include "transport/zmq_channel.h"

namespace cleave::cli {
namespace {

using Clock = std::chrono::steady_clock;

// TLS adds framing and record overhead to each message; the ZeroMQ limit
// leaves room for it above the application limit.
net::ChannelOptions zmq_options(size_t max_message_bytes) {
  net::ChannelOptions options;
  options.max_message_bytes = static_cast<int64_t>(max_message_bytes + max_message_bytes / 64 + (64 << 10));
  return options;
}

secure::SecureChannelOptions tls_options(const SecureConfig& config, std::set<secure::NodeRole> roles,
                                         size_t max_message_bytes, const ServiceLog& log) {
  secure::SecureChannelOptions options;
  options.identity.cert_path = config.cert;
  options.identity.key_path = config.key;
  options.identity.ca_path = config.ca;
  if (!config.crl.empty()) options.identity.crl_path = config.crl;
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

// Lets through only what the policy accepts from authenticated peers; every
// refusal is answered (so the peer learns why) and logged.
class GuardedServerChannel : public net::ServerChannel {
 public:
  GuardedServerChannel(std::unique_ptr<secure::SecureServerChannel> inner, PeerPolicy policy, ServiceLog log)
      : inner_(std::move(inner)), policy_(std::move(policy)), log_(std::move(log)) {}

  void send(const net::PeerId& peer, net::Bytes payload) override { inner_->send(peer, std::move(payload)); }
  std::string endpoint() const override { return inner_->endpoint(); }

  std::optional<net::Envelope> recv(net::Millis timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<net::Millis>(deadline - Clock::now());
      std::optional<net::Envelope> envelope = inner_->recv(std::max(left, net::Millis(0)));
      if (!envelope) return std::nullopt;
      const std::optional<secure::PeerIdentity> peer = inner_->peer_identity(envelope->peer);
      std::optional<std::string> refused =
          peer ? (policy_.check ? policy_.check(*peer, envelope->payload) : std::nullopt)
               : std::optional<std::string>("the sender has no established TLS session");
      if (!refused) return envelope;
      const std::string who = peer ? peer->node_id + " (" + secure::role_name(peer->role) + ")"
                                   : secure::peer_label(envelope->peer);
      log_("refused a message from " + who + ": " + *refused);
      try {
        inner_->send(envelope->peer, policy_.refusal(*refused));
      } catch (const net::TransportError& e) {
        log_("could not tell " + who + " why: " + e.what());
      }
      if (Clock::now() >= deadline) return std::nullopt;
    }
  }

 private:
  std::unique_ptr<secure::SecureServerChannel> inner_;
  PeerPolicy policy_;
  ServiceLog log_;
};

// A TLS session that fails (the server refused our certificate, is not who we
// expect, or is not up yet) becomes a TransportError: the roles' retry loops
// treat it like a lost connection, and the next call starts a new session.
class TlsClientChannel : public net::ClientChannel {
 public:
  explicit TlsClientChannel(std::unique_ptr<secure::SecureClientChannel> inner) : inner_(std::move(inner)) {}

  void send(net::Bytes payload) override {
    try {
      inner_->send(std::move(payload));
    } catch (const secure::SecureChannelError& e) {
      throw net::TransportError(describe() + ": " + e.what());
    }
  }
  std::optional<net::Bytes> recv(net::Millis timeout) override {
    try {
      return inner_->recv(timeout);
    } catch (const secure::SecureChannelError& e) {
      throw net::TransportError(describe() + ": " + e.what());
    }
  }
  void reconnect() override { inner_->reconnect(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<secure::SecureClientChannel> inner_;
};

}  // namespace

std::unique_ptr<net::ServerChannel> bind_service(const std::string& endpoint, const SecureConfig& tls,
                                                 PeerPolicy policy, size_t max_message_bytes,
                                                 const ServiceLog& log) {
  std::unique_ptr<net::ServerChannel> plain = net::zmq_bind(endpoint, zmq_options(max_message_bytes));
  if (tls.insecure) {
    secure::warn_insecure(plain->endpoint(), log);
    return plain;
  }
  secure::SecureChannelOptions options = tls_options(tls, policy.roles, max_message_bytes, log);
  auto server = std::make_unique<secure::SecureServerChannel>(std::move(plain), std::move(options));
  return std::make_unique<GuardedServerChannel>(std::move(server), std::move(policy), log);
}

std::unique_ptr<net::ClientChannel> connect_service(const std::string& endpoint, const SecureConfig& tls,
                                                    secure::NodeRole server_role, const std::string& server_name,
                                                    size_t max_message_bytes, const ServiceLog& log) {
  std::unique_ptr<net::ClientChannel> plain = net::zmq_connect(endpoint, zmq_options(max_message_bytes));
  if (tls.insecure) {
    secure::warn_insecure(endpoint, log);
    return plain;
  }
  secure::SecureChannelOptions options = tls_options(tls, {server_role}, max_message_bytes, log);
  if (!server_name.empty()) options.expected_peer_name = server_name;
  return std::make_unique<TlsClientChannel>(
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
