// Settings shared by the secure client and server channels.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "secure/node_role.h"
#include "secure/tls_identity.h"
#include "util/log.h"

namespace cleave::secure {

using Millis = std::chrono::milliseconds;

struct SecureChannelOptions {
  TlsIdentity identity;
  // Roles whose certificates may talk to this end, e.g. {client} for the
  // split server, {split_server} for a client dialling it. Must not be empty.
  std::set<NodeRole> allowed_peer_roles;
  // When set, the peer's certificate CN must equal it (a client names the
  // server it means to reach).
  std::optional<std::string> expected_peer_name;
  // Client: how long send() waits for the handshake (blocking_handshake) and
  // handshake() waits at most. Server: how long a peer may take to finish
  // its handshake before its session is dropped.
  Millis handshake_timeout{10000};
  // Client: true makes send() complete the handshake first (throwing on
  // refusal or timeout); false queues messages until recv() has pumped the
  // handshake to completion (for single-threaded drivers).
  bool blocking_handshake = true;
  // Largest application message accepted from a peer; a peer announcing a
  // bigger one loses its session.
  uint64_t max_message_bytes = uint64_t{256} << 20;
  // Server: sessions kept at once; beyond it a handshaking one (the oldest)
  // is dropped first, else the least recently active established one.
  size_t max_sessions = 1024;
  // Server: sessions still handshaking (unauthenticated peers) kept at once;
  // beyond it the oldest is dropped. Bounds what anyone who can open a TCP
  // connection can make the server hold (about 30 KiB of TLS state each).
  size_t max_handshakes = 64;
  // Server: how often recv() looks whether the CRL file changed (a changed
  // CRL also drops established sessions whose certificate it now revokes).
  Millis crl_check_interval{1000};
  // Server: told the identity of each established session that a changed
  // CRL now revokes (after the session is dropped), so a service can forget
  // the node at once (the aggregator takes the site out of its rounds).
  std::function<void(const PeerIdentity&)> on_revoked;
  // Server: told each handshake it refuses, with why as one of
  // handshake_refusal_reasons() (for a metric by reason).
  std::function<void(const std::string& reason)> on_handshake_refused;
  // Where refusals and dropped sessions are reported (as warnings; a
  // reloaded CRL as info). The server passes at most 10 such lines per 10 s
  // (then a count).
  Log log = Log::to_stderr("secure");

  // Throws std::invalid_argument naming the first bad field.
  void validate() const;
  // Before a message is sent: throws net::TransportError, as every channel
  // does, when `bytes` is above max_message_bytes (the peer would drop the
  // session on reading its length); `destination` names the peer.
  void check_message_size(uint64_t bytes, const std::string& destination) const;
};

// What SecureChannelOptions::on_handshake_refused is told: the peer's
// certificate expired (or is not yet valid), revoked, untrusted (another
// failed chain check: unknown CA, bad signature), not_a_node (no cleave node
// name or role in it), role (not admitted here), name (not the expected
// node); not_tls (plaintext or another frame version); tls (the handshake
// failed otherwise); timeout (no finished handshake in handshake_timeout);
// evicted (max_handshakes or max_sessions made room).
const std::vector<std::string>& handshake_refusal_reasons();

// A TLS session could not be set up or was torn down (refused certificate,
// failed record authentication, handshake timeout). The channel stays usable:
// the next send() or recv() starts a new session.
class SecureChannelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cleave::secure
