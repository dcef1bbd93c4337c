#include "secure/secure_client_channel.h"

#include <chrono>

namespace cleave::secure {

namespace {

using Clock = std::chrono::steady_clock;

net::Millis left_until(Clock::time_point deadline) {
  return std::max(net::Millis(0),
                  std::chrono::duration_cast<net::Millis>(deadline - Clock::now()));
}

}  // namespace

SecureClientChannel::SecureClientChannel(std::unique_ptr<net::ClientChannel> inner,
                                         SecureChannelOptions options)
    : inner_(std::move(inner)), context_(TlsContext::Side::client, options) {
  if (!inner_) throw std::invalid_argument("SecureClientChannel needs an inner channel");
  // The handshake starts with the first send() or recv(), not here: a
  // ClientHello sent now and answered only at the first request (an
  // aggregator's link to a split server waits minutes for the sites) would
  // find the server long past its handshake_timeout, its session dropped, and
  // the first request would fail on the stale ServerHello.
}

SecureClientChannel::~SecureClientChannel() {
  if (!session_ || !session_->established()) return;
  try {
    session_->close();
    flush();
  } catch (const std::exception&) {
    // The server or the connection is already gone: nothing to free there.
  }
}

void SecureClientChannel::start_session() {
  // A fresh inner connection gives the server a fresh PeerId, so no stale
  // server-side session can swallow the new ClientHello.
  if (started_once_) inner_->reconnect();
  started_once_ = true;
  ready_.clear();
  session_ = std::make_unique<TlsSession>(context_, inner_->describe());
  if (session_->state() == TlsSession::State::failed) {
    const std::string why = session_->failure();
    session_.reset();
    throw SecureChannelError("cannot start TLS with " + inner_->describe() + ": " + why);
  }
  flush();
}

void SecureClientChannel::flush() {
  if (auto out = session_->take_outgoing_frame()) inner_->send(std::move(*out));
}

void SecureClientChannel::ingest(net::Bytes frame) {
  const bool was_established = session_->established();
  session_->receive_frame(std::move(frame));
  flush();  // our handshake messages, or an alert
  for (net::Bytes& message : session_->inbox()) ready_.push_back(std::move(message));
  session_->inbox().clear();

  const TlsSession::State state = session_->state();
  if (state == TlsSession::State::failed || state == TlsSession::State::closed) {
    const std::string why = state == TlsSession::State::failed
                                ? session_->failure()
                                : std::string("the server closed the TLS session");
    const size_t discarded = queued_.size();
    queued_.clear();
    session_.reset();
    std::string text = "TLS session with " + inner_->describe() + " ended: " + why;
    if (discarded) text += "; " + std::to_string(discarded) + " queued messages were discarded";
    context_.options().log.warning(text);
    throw SecureChannelError(text + "; the next send() or recv() starts a new session");
  }
  if (!was_established && session_->established()) {
    while (!queued_.empty()) {
      session_->send_message(queued_.front());
      queued_.pop_front();
      flush();
    }
  }
}

void SecureClientChannel::handshake(net::Millis timeout) {
  if (!session_) start_session();
  const auto deadline = Clock::now() + timeout;
  while (!session_->established()) {
    const net::Millis left = left_until(deadline);
    if (left.count() == 0) {
      throw SecureChannelError("TLS handshake with " + inner_->describe() +
                               " did not complete within " + std::to_string(timeout.count()) +
                               " ms: is the server up, and running TLS (not insecure: true)?");
    }
    if (auto frame = inner_->recv(left)) ingest(std::move(*frame));
  }
}

void SecureClientChannel::send(net::Bytes payload) {
  context_.options().check_message_size(payload.size(), describe());
  if (!session_) start_session();
  if (!session_->established()) {
    if (!context_.options().blocking_handshake) {
      queued_.push_back(std::move(payload));
      return;
    }
    handshake(context_.options().handshake_timeout);
  }
  session_->send_message(payload);
  flush();
}

std::optional<net::Bytes> SecureClientChannel::recv(net::Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!session_) start_session();
  for (;;) {
    if (!ready_.empty()) {
      net::Bytes next = std::move(ready_.front());
      ready_.pop_front();
      return next;
    }
    auto frame = inner_->recv(left_until(deadline));
    if (!frame) return std::nullopt;
    ingest(std::move(*frame));
  }
}

void SecureClientChannel::reconnect() {
  if (session_ && session_->established()) {
    session_->close();
    flush();
  }
  session_.reset();
  queued_.clear();
  start_session();
}

std::optional<PeerIdentity> SecureClientChannel::server_identity() const {
  if (!handshake_complete()) return std::nullopt;
  return session_->peer();
}

}  // namespace cleave::secure
