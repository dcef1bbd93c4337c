// What a role's channels look like with TLS underneath, for the deployable
// services (cli/) and the simulated fleet (simulate/) alike: on the server
// end a per-message policy over the authenticated peer, on the client end TLS
// failures surfaced as transport errors the roles already retry.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "secure/tls_channel.h"

namespace cleave::secure {

// Who may talk to a service: the roles TLS admits, and per message a check of
// the peer's proven identity against what the message claims.
struct PeerPolicy {
  std::set<NodeRole> roles;
  // nullopt: serve the message; a reason: answer refusal(reason) instead.
  std::function<std::optional<std::string>(const PeerIdentity&, const net::Bytes&)> check;
  std::function<net::Bytes(const std::string& reason)> refusal;
  // Told each authenticated peer whose session a changed CRL ended
  // (SecureChannelOptions::on_revoked); may be empty.
  std::function<void(const PeerIdentity&)> on_revoked;
};

// Lets through only messages from peers with an established session that
// policy.check accepts; every refusal is answered with policy.refusal (so the
// peer learns why) and logged. An empty check accepts every authenticated peer.
std::unique_ptr<net::ServerChannel> guard_server_channel(
    std::unique_ptr<SecureServerChannel> server, PeerPolicy policy, Log log);

// A client channel whose failed TLS session (the server refused our
// certificate, is not who we expect, or is not up yet) throws
// net::TransportError instead of SecureChannelError: the roles' retry loops
// treat it like a lost connection, and the next call starts a new session.
std::unique_ptr<net::ClientChannel> retryable_client_channel(
    std::unique_ptr<SecureClientChannel> client);

// The message limit for the channel under a TLS channel whose application
// messages are at most `max_message_bytes`: room for record and framing overhead.
int64_t inner_message_bytes(uint64_t max_message_bytes);

}  // namespace cleave::secure
