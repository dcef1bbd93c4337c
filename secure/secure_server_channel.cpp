#include "secure/secure_server_channel.h"

namespace cleave::secure {

namespace {

using Clock = std::chrono::steady_clock;

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
      next_crl_check_(Clock::now() + options.crl_check_interval) {
  if (!inner_) throw std::invalid_argument("SecureServerChannel needs an inner channel");
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
  } catch (const net::PeerUnreachable& error) {
    drop(peer, error.what());
    throw;
  }
}

std::optional<net::Envelope> SecureServerChannel::recv(net::Millis timeout) {
  const auto deadline = Clock::now() + timeout;
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
    const auto left = std::chrono::duration_cast<net::Millis>(deadline - now);
    auto frame = inner_->recv(std::max(left, net::Millis(0)));
    if (!frame) return std::nullopt;
    on_frame(std::move(*frame));
  }
}

SecureServerChannel::Session& SecureServerChannel::session_for(const net::PeerId& peer) {
  auto it = sessions_.find(peer);
  if (it != sessions_.end()) return it->second;
  if (sessions_.size() >= context_.options().max_sessions) {
    auto oldest = sessions_.begin();
    for (auto s = sessions_.begin(); s != sessions_.end(); ++s) {
      if (s->second.last_active < oldest->second.last_active) oldest = s;
    }
    drop(oldest->first, "evicted: " + std::to_string(sessions_.size()) +
                            " sessions open, the max_sessions limit");
  }
  Session session;
  session.tls = std::make_unique<TlsSession>(context_, peer_label(peer));
  return sessions_.emplace(peer, std::move(session)).first->second;
}

void SecureServerChannel::on_frame(net::Envelope frame) {
  Session& session = session_for(frame.peer);
  session.last_active = ++activity_clock_;
  TlsSession& tls = *session.tls;
  tls.receive_frame(std::move(frame.payload));
  if (tls.state() == TlsSession::State::failed) {
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
  } catch (const net::TransportError& error) {
    // The peer left mid-handshake: forget it, serve the rest.
    drop(peer, std::string("cannot reach it: ") + error.what());
    return false;
  }
}

void SecureServerChannel::drop(const net::PeerId& peer, const std::string& why,
                               std::optional<Bytes> last_frame) {
  const auto it = sessions_.find(peer);
  if (it == sessions_.end()) return;
  std::string who = peer_label(peer);
  if (const auto& identity = it->second.tls->peer()) {
    who += " ('" + identity->node_id + "', " + role_name(identity->role) + ")";
  }
  // Log before the peer can hear about it, so the log is never behind the peer.
  context_.options().log("dropped TLS session of " + who + ": " + why);
  sessions_.erase(it);
  if (!last_frame) return;
  try {
    inner_->send(peer, std::move(*last_frame));
  } catch (const net::TransportError&) {
    // Best effort: the alert only tells the peer why.
  }
}

void SecureServerChannel::drop_revoked_sessions() {
  std::vector<net::PeerId> revoked;
  for (const auto& [peer, session] : sessions_) {
    if (context_.is_revoked(session.tls->peer_certificate())) revoked.push_back(peer);
  }
  for (const net::PeerId& peer : revoked) {
    TlsSession& tls = *sessions_.at(peer).tls;
    tls.close();  // close_notify: the peer learns it must start over
    auto goodbye = tls.take_outgoing_frame();
    drop(peer, "its certificate is now revoked by the CRL", std::move(goodbye));
  }
}

}  // namespace cleave::secure
