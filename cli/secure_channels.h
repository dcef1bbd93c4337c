// The channels of the deployable services, built from the `secure:` section:
// mutually authenticated TLS 1.3 over ZeroMQ (secure/), or plaintext only
// with an explicit `secure.insecure: true`, logged as a warning.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "cli/config_sections.h"
#include "secure/node_role.h"
#include "secure/service_channel.h"
#include "transport/channel.h"
#include "util/log.h"

namespace cleave::metrics {
class Registry;
}

namespace cleave::cli {

// Binds `endpoint` for a service. With TLS, every message reaching the
// service comes from a peer whose certificate chains to tls.ca, is not
// revoked in tls.crl, holds one of policy.roles, and passed policy.check
// (aggregator/peer_policies.h, split/peer_policy.h); policy.on_revoked hears of each peer whose
// session a changed tls.crl ended. With `registry`, each refused handshake
// counts in cleave_tls_handshakes_refused_total{reason} (every reason of
// secure::handshake_refusal_reasons() exported from 0).
// Throws net::TransportError (port taken) or ConfigError (unusable files).
std::unique_ptr<net::ServerChannel> bind_service(const std::string& endpoint, const SecureConfig& tls,
                                                 secure::PeerPolicy policy, size_t max_message_bytes,
                                                 const Log& log, metrics::Registry* registry = nullptr);

// cleave_tls_handshakes_refused_total{reason} in `registry`, every reason
// from 0, and the secure::SecureChannelOptions::on_handshake_refused that counts.
std::function<void(const std::string& reason)> handshake_refusal_counter(metrics::Registry& registry);

// Connects to a service whose certificate must hold `server_role` (and be
// named `server_name` unless it is empty). A refused or failed TLS session
// surfaces as net::TransportError, so callers retry it like a lost connection.
std::unique_ptr<net::ClientChannel> connect_service(const std::string& endpoint, const SecureConfig& tls,
                                                    secure::NodeRole server_role, const std::string& server_name,
                                                    size_t max_message_bytes, const Log& log);

// The identity files the `secure:` section names.
secure::TlsIdentity tls_identity(const SecureConfig& tls);

// The node name (subject CN) of the certificate at `cert_path`; throws
// std::runtime_error when the file is unreadable or names no node.
std::string certificate_name(const std::string& cert_path);

// This node's id: `configured` when given, else its certificate's name.
// With TLS a configured id must equal the certificate's name (the services
// refuse messages whose id differs from the sender's certificate).
std::string node_id(const std::string& configured, const SecureConfig& tls, const std::string& fallback);

}  // namespace cleave::cli
