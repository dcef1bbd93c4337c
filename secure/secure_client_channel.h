// The client end of a mutually authenticated TLS 1.3 channel: wraps any
// net::ClientChannel. The handshake starts with the first send(), recv() or
// handshake() and is driven by them; a session that fails is replaced by a
// fresh one (new inner connection, new handshake) on the next call.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "secure/tls_session.h"
#include "transport/channel.h"

namespace cleave::secure {

class SecureClientChannel : public net::ClientChannel {
 public:
  SecureClientChannel(std::unique_ptr<net::ClientChannel> inner, SecureChannelOptions options);
  // Says goodbye (close_notify) on an established session, so the server
  // frees it at once instead of keeping it until max_sessions evicts it.
  // Best effort: a server that is gone is not an error.
  ~SecureClientChannel() override;

  // With blocking_handshake (the default) completes the handshake first,
  // throwing SecureChannelError when the server refuses us, is not who
  // we expect, or does not answer within handshake_timeout. Otherwise queues
  // the message until recv() has completed the handshake.
  void send(net::Bytes payload) override;
  // Pumps the handshake and returns the next message from the server.
  // Throws SecureChannelError when the server alerts (e.g. it refused our
  // certificate) or its records fail authentication.
  std::optional<net::Bytes> recv(net::Millis timeout) override;
  // Says goodbye (close_notify), reconnects the inner channel and handshakes anew.
  void reconnect() override;
  std::string describe() const override { return "tls+" + inner_->describe(); }

  // Completes the handshake within `timeout` or throws SecureChannelError.
  void handshake(net::Millis timeout);
  bool handshake_complete() const { return session_ && session_->established(); }
  // The server as its certificate names it; nullopt before the handshake.
  std::optional<PeerIdentity> server_identity() const;

 private:
  void start_session();
  void ingest(net::Bytes frame);
  void flush();

  std::unique_ptr<net::ClientChannel> inner_;
  TlsContext context_;
  std::unique_ptr<TlsSession> session_;
  bool started_once_ = false;
  std::deque<net::Bytes> queued_;  // sent before the handshake (non-blocking mode)
  std::deque<net::Bytes> ready_;
};

}  // namespace cleave::secure
