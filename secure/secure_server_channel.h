// The server end of a mutually authenticated TLS 1.3 channel: wraps any
// net::ServerChannel and keeps one TLS session per PeerId.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>

#include "secure/tls_session.h"
#include "transport/channel.h"
#include "transport/rate_limited_log.h"

namespace cleave::secure {

class SecureServerChannel : public net::ServerChannel {
 public:
  // Throws std::invalid_argument / std::runtime_error when the options or
  // identity files are unusable.
  SecureServerChannel(std::unique_ptr<net::ServerChannel> inner, SecureChannelOptions options);

  // Throws net::PeerUnreachable when `peer` has no established session (it
  // failed, closed or was evicted) or the inner channel cannot reach it.
  void send(const net::PeerId& peer, net::Bytes payload) override;
  // Pumps handshakes and returns the next authenticated application message.
  // A peer that fails the handshake, tampers with a record or breaks the
  // framing loses its session (with a TLS alert where possible) and a log
  // line; everyone else is unaffected.
  std::optional<net::Envelope> recv(net::Millis timeout) override;
  std::string endpoint() const override { return inner_->endpoint(); }

  // Who `peer` proved to be; nullopt while it has no established session.
  // Services compare it with the client id a message claims.
  std::optional<PeerIdentity> peer_identity(const net::PeerId& peer) const;
  size_t session_count() const { return sessions_.size(); }
  // Sessions of peers that have not finished their handshake.
  size_t handshake_count() const;
  // Peers whose sends were refused because they did not read (PeerNotReading).
  uint64_t peers_not_reading() const { return peers_not_reading_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Session {
    std::unique_ptr<TlsSession> tls;
    uint64_t last_active = 0;
    Clock::time_point started;
  };

  void on_frame(net::Envelope frame);
  // Sends what the session has for `peer`; false if the peer was unreachable (and dropped).
  bool flush(const net::PeerId& peer, TlsSession& tls);
  // Tells options.on_handshake_refused, when set.
  void handshake_refused(const std::string& reason) const;
  // Logs and forgets the session, then sends `last_frame` (an alert) if any.
  void drop(const net::PeerId& peer, const std::string& why,
            std::optional<Bytes> last_frame = std::nullopt);
  // Drops a peer whose queue is full (net::PeerNotReading), logged apart from
  // other drops so that a flood of failed handshakes cannot hide it.
  void drop_not_reading(const net::PeerId& peer, const std::string& why);
  // Logs (to `log`) and erases the session; false if there was none.
  bool forget(const net::PeerId& peer, const std::string& why, net::RateLimitedLog& log);
  void drop_revoked_sessions();
  // Drops handshakes older than handshake_timeout and gives their memory back.
  void drop_stale_handshakes(Clock::time_point now);
  // Makes room for one more session of a new peer.
  void make_room();
  Session& session_for(const net::PeerId& peer);

  std::unique_ptr<net::ServerChannel> inner_;
  TlsContext context_;
  std::map<net::PeerId, Session> sessions_;
  std::deque<net::Envelope> ready_;
  uint64_t activity_clock_ = 0;
  uint64_t peers_not_reading_ = 0;
  Clock::time_point next_crl_check_;
  Clock::time_point next_handshake_sweep_;
  net::RateLimitedLog drop_log_;
  net::RateLimitedLog not_reading_log_;
};

// Printable form of a PeerId (ZeroMQ routing ids are binary).
std::string peer_label(const net::PeerId& peer);

}  // namespace cleave::secure
