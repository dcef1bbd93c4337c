#include "secure/secure_server_channel.h"

#include <malloc.h>

#include <algorithm>
#include <vector>

namespace cleave::secure {
namespace {

// "peer 0x.. ('site-a', client)" once authenticated, "peer 0x.." before.
std::string describe_peer(const net::PeerId& peer, const TlsSession& tls) {
  std::string who = peer_label(peer);
  if (const auto& identity = tls.peer()) who += " ('" + identity->node_id + "', " + role_name(identity->role) + ")";
  return who;
}

}  // namespace

std::string peer_label(const net::PeerId& peer) {
  bool printable = !peer.empty();
  for (unsigned char c : peer) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable) return "peer " + peer;
  static const char digits[] = "0123456789abcdef";
  std::string hex = "peer 0x";
  for (unsigned char c : peer) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

SecureServerChannel::SecureServerChannel(std::unique_ptr<net::ServerChannel> inner,
                                         SecureChannelOptions options)
    : inner_(std::move(inner)),
      context_(TlsContext::Side::server, options),
      next_crl_check_(Clock::now() + options.crl_check_interval),
      next_handshake_sweep_(Clock::now()),
      drop_log_(context_.options().log, "dropped TLS sessions"),
      not_reading_log_(context_.options().log, "peers dropped for not reading") {
  if (!inner_) throw std::invalid_argument("SecureServerChannel needs an inner channel");
}

size_t SecureServerChannel::handshake_count() const {
  return static_cast<size_t>(std::count_if(sessions_.begin(), sessions_.end(), [](const auto& entry) {
    return entry.second.tls->state() == TlsSession::State::handshaking;
  }));
}

std::optional<PeerIdentity> SecureServerChannel::peer_identity(const net::PeerId& peer) const {
  const auto it = sessions_.find(peer);
  if (it == sessions_.end() || !it->second.tls->established()) return std::nullopt;
  return it->second.tls->peer();
}

void SecureServerChannel::send(const net::PeerId& peer, net::Bytes payload) {
  const auto it = sessions_.find(peer);
  if (it == sessions_.end() || !it->second.tls->established()) {
    throw net::PeerUnreachable("cannot send to " + peer_label(peer) +
                               ": it has no established TLS session (it failed, closed or "
                               "was evicted)");
  }
  context_.options().check_message_size(payload.size(), peer_label(peer));
  TlsSession& tls = *it->second.tls;
  try {
    tls.send_message(payload);
  } catch (const SecureChannelError& error) {
    drop(peer, error.what());
    throw net::PeerUnreachable(error.what());
  }
  auto frame = tls.take_outgoing_frame();
  try {
    if (frame) inner_->send(peer, std::move(*frame));
  } catch (const net::PeerNotReading& error) {
    drop_not_reading(peer, error.what());
    throw;
  } catch (const net::PeerUnreachable& error) {
    drop(peer, error.what());
    throw;
  }
}

std::optional<net::Envelope> SecureServerChannel::recv(net::Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  bool pumped = false;   // at least one frame is taken per call, even with a zero timeout
  for (;;) {
    if (!ready_.empty()) {
      net::Envelope next = std::move(ready_.front());
      ready_.pop_front();
      return next;
    }
    const auto now = Clock::now();
    if (now >= next_crl_check_) {
      next_crl_check_ = now + context_.options().crl_check_interval;
      if (context_.reload_crl_if_changed()) drop_revoked_sessions();
    }
    if (now >= next_handshake_sweep_) {
      next_handshake_sweep_ = now + std::min<Millis>(Millis(1000), context_.options().handshake_timeout / 4);
      drop_stale_handshakes(now);
      drop_log_.flush(now);
      not_reading_log_.flush(now);
    }
    // Past the deadline with no message: return, even if frames keep
    // coming, so that a flood cannot keep the caller from its stop flag.
    if (pumped && now >= deadline) return std::nullopt;
    const auto left = std::chrono::duration_cast<net::Millis>(deadline - now);
    auto frame = inner_->recv(std::max(left, net::Millis(0)));
    if (!frame) return std::nullopt;
    on_frame(std::move(*frame));
    pumped = true;
  }
}

void SecureServerChannel::drop_stale_handshakes(Clock::time_point now) {
  std::vector<net::PeerId> stale;
  for (const auto& [peer, session] : sessions_) {
    if (session.tls->state() == TlsSession::State::handshaking &&
        now - session.started >= context_.options().handshake_timeout)
      stale.push_back(peer);
  }
  for (const net::PeerId& peer : stale) {
    handshake_refused("timeout");
    drop(peer, "no finished handshake within handshake_timeout (" +
                   std::to_string(context_.options().handshake_timeout.count()) + " ms)");
  }
  // glibc keeps freed handshake buffers for reuse; after a flood of
  // half-open handshakes, give the pages back to the system.
  if (!stale.empty()) malloc_trim(0);
}

void SecureServerChannel::make_room() {
  const SecureChannelOptions& options = context_.options();
  // Of the handshaking sessions, the one started first; of the established,
  // the least recently active.
  auto oldest_handshake = sessions_.end();
  auto idlest = sessions_.end();
  size_t handshakes = 0;
  for (auto s = sessions_.begin(); s != sessions_.end(); ++s) {
    if (s->second.tls->state() == TlsSession::State::handshaking) {
      ++handshakes;
      if (oldest_handshake == sessions_.end() || s->second.started < oldest_handshake->second.started)
        oldest_handshake = s;
    } else if (idlest == sessions_.end() || s->second.last_active < idlest->second.last_active) {
      idlest = s;
    }
  }
  if (handshakes >= options.max_handshakes) {
    handshake_refused("evicted");
    drop(oldest_handshake->first, "evicted: " + std::to_string(handshakes) +
                                      " handshakes unfinished, the max_handshakes limit");
  } else if (sessions_.size() >= options.max_sessions) {
    const auto victim = oldest_handshake != sessions_.end() ? oldest_handshake : idlest;
    if (victim == oldest_handshake) handshake_refused("evicted");
    drop(victim->first, "evicted: " + std::to_string(sessions_.size()) + " sessions open, the max_sessions limit");
  }
}

SecureServerChannel::Session& SecureServerChannel::session_for(const net::PeerId& peer) {
  auto it = sessions_.find(peer);
  if (it != sessions_.end()) return it->second;
  make_room();
  Session session;
  session.tls = std::make_unique<TlsSession>(context_, peer_label(peer));
  session.started = Clock::now();
  return sessions_.emplace(peer, std::move(session)).first->second;
}

void SecureServerChannel::on_frame(net::Envelope frame) {
  Session& session = session_for(frame.peer);
  session.last_active = ++activity_clock_;
  TlsSession& tls = *session.tls;
  const bool handshaking = tls.state() == TlsSession::State::handshaking;
  tls.receive_frame(std::move(frame.payload));
  if (tls.state() == TlsSession::State::failed) {
    if (handshaking && tls.handshake_attempted()) handshake_refused(tls.failure_reason());
    // Messages decrypted before the failure in this frame go with the session:
    // services only see messages from peers that are still authenticated.
    auto alert = tls.take_outgoing_frame();
    drop(frame.peer, tls.failure(), std::move(alert));
    return;
  }
  if (!flush(frame.peer, tls)) return;  // handshake replies
  for (Bytes& message : tls.inbox()) ready_.push_back({frame.peer, std::move(message)});
  tls.inbox().clear();
  if (tls.state() == TlsSession::State::closed) sessions_.erase(frame.peer);
}

bool SecureServerChannel::flush(const net::PeerId& peer, TlsSession& tls) {
  auto out = tls.take_outgoing_frame();
  if (!out) return true;
  try {
    inner_->send(peer, std::move(*out));
    return true;
  } catch (const net::PeerNotReading& error) {
    // It asks for handshakes and never reads the replies: forget it, serve the rest.
    drop_not_reading(peer, error.what());
    return false;
  } catch (const net::TransportError& error) {
    // The peer left mid-handshake: forget it, serve the rest.
    drop(peer, std::string("cannot reach it: ") + error.what());
    return false;
  }
}

void SecureServerChannel::handshake_refused(const std::string& reason) const {
  if (context_.options().on_handshake_refused) context_.options().on_handshake_refused(reason);
}

void SecureServerChannel::drop(const net::PeerId& peer, const std::string& why,
                               std::optional<Bytes> last_frame) {
  // Anyone can make sessions fail, so these lines are rate-limited.
  if (!forget(peer, why, drop_log_) || !last_frame) return;
  try {
    inner_->send(peer, std::move(*last_frame));
  } catch (const net::TransportError&) {
    // Best effort: the alert only tells the peer why.
  }
}

void SecureServerChannel::drop_not_reading(const net::PeerId& peer, const std::string& why) {
  ++peers_not_reading_;
  forget(peer, why, not_reading_log_);
}

bool SecureServerChannel::forget(const net::PeerId& peer, const std::string& why, net::RateLimitedLog& log) {
  const auto it = sessions_.find(peer);
  if (it == sessions_.end()) return false;
  // Log before the peer can hear about it, so the log is never behind the peer.
  log("dropped TLS session of " + describe_peer(peer, *it->second.tls) + ": " + why);
  sessions_.erase(it);
  return true;
}

void SecureServerChannel::drop_revoked_sessions() {
  std::vector<net::PeerId> revoked;
  for (const auto& [peer, session] : sessions_) {
    if (context_.is_revoked(session.tls->peer_certificate())) revoked.push_back(peer);
  }
  for (const net::PeerId& peer : revoked) {
    TlsSession& tls = *sessions_.at(peer).tls;
    const std::optional<PeerIdentity> identity = tls.peer();
    tls.close();  // close_notify: the peer learns it must start over
    auto goodbye = tls.take_outgoing_frame();
    drop(peer, "its certificate is now revoked by the CRL", std::move(goodbye));
    if (identity && context_.options().on_revoked) context_.options().on_revoked(*identity);
  }
}

}  // namespace cleave::secure
