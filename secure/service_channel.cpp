#include "secure/service_channel.h"

#include "transport/rate_limited_log.h"

#include <algorithm>
#include <chrono>

namespace cleave::secure {
namespace {

using Clock = std::chrono::steady_clock;

class GuardedServerChannel : public net::ServerChannel {
 public:
  GuardedServerChannel(std::unique_ptr<SecureServerChannel> inner, PeerPolicy policy, Log log)
      : inner_(std::move(inner)), policy_(std::move(policy)), refusal_log_(std::move(log), "refused messages") {}

  void send(const net::PeerId& peer, net::Bytes payload) override {
    inner_->send(peer, std::move(payload));
  }
  std::string endpoint() const override { return inner_->endpoint(); }

  std::optional<net::Envelope> recv(net::Millis timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<net::Millis>(deadline - Clock::now());
      std::optional<net::Envelope> envelope = inner_->recv(std::max(left, net::Millis(0)));
      if (!envelope) return std::nullopt;
      const std::optional<PeerIdentity> peer = inner_->peer_identity(envelope->peer);
      std::optional<std::string> refused =
          peer ? (policy_.check ? policy_.check(*peer, envelope->payload) : std::nullopt)
               : std::optional<std::string>("the sender has no established TLS session");
      if (!refused) return envelope;
      const std::string who =
          peer ? peer->node_id + " (" + role_name(peer->role) + ")" : peer_label(envelope->peer);
      refusal_log_("refused a message from " + who + ": " + *refused);
      if (policy_.refusal) {
        try {
          inner_->send(envelope->peer, policy_.refusal(*refused));
        } catch (const net::TransportError& e) {
          refusal_log_("could not tell " + who + " why: " + e.what());
        }
      }
      if (Clock::now() >= deadline) return std::nullopt;
    }
  }

 private:
  std::unique_ptr<SecureServerChannel> inner_;
  PeerPolicy policy_;
  net::RateLimitedLog refusal_log_;   // a peer can send refused messages as fast as it likes
};

class RetryableClientChannel : public net::ClientChannel {
 public:
  explicit RetryableClientChannel(std::unique_ptr<SecureClientChannel> inner)
      : inner_(std::move(inner)) {}

  void send(net::Bytes payload) override {
    try {
      inner_->send(std::move(payload));
    } catch (const SecureChannelError& e) {
      throw net::TransportError(describe() + ": " + e.what());
    }
  }
  std::optional<net::Bytes> recv(net::Millis timeout) override {
    try {
      return inner_->recv(timeout);
    } catch (const SecureChannelError& e) {
      throw net::TransportError(describe() + ": " + e.what());
    }
  }
  void reconnect() override { inner_->reconnect(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<SecureClientChannel> inner_;
};

}  // namespace

std::unique_ptr<net::ServerChannel> guard_server_channel(
    std::unique_ptr<SecureServerChannel> server, PeerPolicy policy, Log log) {
  if (!server) throw std::invalid_argument("guard_server_channel needs a secure server channel");
  return std::make_unique<GuardedServerChannel>(std::move(server), std::move(policy),
                                                std::move(log));
}

std::unique_ptr<net::ClientChannel> retryable_client_channel(
    std::unique_ptr<SecureClientChannel> client) {
  if (!client) {
    throw std::invalid_argument("retryable_client_channel needs a secure client channel");
  }
  return std::make_unique<RetryableClientChannel>(std::move(client));
}

int64_t inner_message_bytes(uint64_t max_message_bytes) {
  // TLS records (16 KiB each, a few dozen bytes of overhead) and the frame
  // headers around them stay well under 1/64 of the payload, plus one record.
  return static_cast<int64_t>(max_message_bytes + max_message_bytes / 64 + (64 << 10));
}

}  // namespace cleave::secure
