// Shared pieces of the secure channel tests: a small federation PKI, a log
// that tests can search, an echo service on its own thread, and a client
// channel wrapper that records, corrupts and replays frames.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "secure/ca.h"
#include "secure/tls_channel.h"
#include "tests/support/shared_data.h"

namespace cleave::secure::test_support {

// Certificates for every case the tests need, generated once per binary.
struct Pki {
  std::string root;
  std::string ca_dir;
  TlsIdentity server;        // "split-0", split-server
  TlsIdentity site_a;        // client
  TlsIdentity site_b;        // client
  TlsIdentity expired;       // client, notAfter yesterday
  TlsIdentity revoked;       // client, on the CRL
  TlsIdentity aggregator;    // "agg-0", aggregator: wrong role for the split server
  TlsIdentity foreign;       // client certificate from another CA (trusting ours)
  TlsIdentity fake_server;   // a client certificate used to run a server

  static Pki create(const std::string& root) {
    Pki pki;
    pki.root = root;
    pki.ca_dir = root + "/ca";
    ca_init(pki.ca_dir, "test-federation");
    const std::string nodes = root + "/nodes";
    auto issue = [&](NodeRole role, const std::string& name, IssueOptions options = {}) {
      TlsIdentity identity = ca_issue(pki.ca_dir, role, name, nodes, options).identity;
      identity.crl_path = ca_paths(pki.ca_dir).crl_path;  // the live CRL, not the node's copy
      return identity;
    };
    pki.server = issue(NodeRole::split_server, "split-0");
    pki.site_a = issue(NodeRole::client, "site-a");
    pki.site_b = issue(NodeRole::client, "site-b");
    IssueOptions expired;
    expired.days = 1;
    expired.not_before_offset_s = -2 * 86400;
    pki.expired = issue(NodeRole::client, "site-expired", expired);
    pki.revoked = issue(NodeRole::client, "site-revoked");
    ca_revoke(pki.ca_dir, pki.revoked.cert_path);
    pki.aggregator = issue(NodeRole::aggregator, "agg-0");
    pki.fake_server = issue(NodeRole::client, "fake-server");

    ca_init(root + "/other-ca", "other-federation");
    pki.foreign = ca_issue(root + "/other-ca", NodeRole::client, "site-foreign",
                           root + "/other-nodes")
                      .identity;
    pki.foreign.ca_path = pki.server.ca_path;  // the attacker trusts our CA...
    pki.foreign.crl_path.reset();              // ...but its own certificate is foreign
    return pki;
  }
};

class LogCapture {
 public:
  // Every line, whatever its level.
  Log sink() {
    return Log(
        [this](const std::string& line) {
          std::lock_guard<std::mutex> lock(mutex_);
          lines_.push_back(line);
        },
        LogLevel::debug);
  }
  bool contains(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const std::string& line : lines_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  size_t count(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const std::string& line : lines_) n += line.find(text) != std::string::npos;
    return n;
  }
  std::string all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    for (const std::string& line : lines_) text += line + "\n";
    return text;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

inline SecureChannelOptions server_options(const TlsIdentity& identity, LogCapture& log) {
  SecureChannelOptions options;
  options.identity = identity;
  options.allowed_peer_roles = {NodeRole::client};
  options.crl_check_interval = Millis(0);
  options.log = log.sink();
  return options;
}

inline SecureChannelOptions client_options(const TlsIdentity& identity, LogCapture& log) {
  SecureChannelOptions options;
  options.identity = identity;
  options.allowed_peer_roles = {NodeRole::split_server};
  options.expected_peer_name = "split-0";
  options.handshake_timeout = Millis(10000);
  options.log = log.sink();
  return options;
}

inline net::Bytes text_bytes(const std::string& text) { return net::Bytes(text.begin(), text.end()); }

inline net::Bytes random_bytes(size_t size, uint32_t seed) {
  std::mt19937 generator(seed);
  net::Bytes bytes(size);
  for (auto& b : bytes) b = static_cast<uint8_t>(generator());
  return bytes;
}

// Serves a SecureServerChannel on its own thread: records every message with
// the identity the server vouches for, and echoes it back.
class EchoService {
 public:
  struct Received {
    net::PeerId peer;
    std::optional<PeerIdentity> identity;
    net::Bytes payload;
  };

  explicit EchoService(std::unique_ptr<SecureServerChannel> server)
      : server_(std::move(server)), thread_([this] { serve(); }) {}
  ~EchoService() {
    stop_ = true;
    thread_.join();
  }

  std::vector<Received> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  bool received_from(const std::string& node_id) const {
    for (const Received& r : received()) {
      if (r.identity && r.identity->node_id == node_id) return true;
    }
    return false;
  }
  std::string endpoint() const { return server_->endpoint(); }
  // The server's counters, as its thread last saw them.
  uint64_t peers_not_reading() const { return peers_not_reading_; }
  size_t handshakes() const { return handshakes_; }
  size_t most_handshakes() const { return most_handshakes_; }
  size_t sessions() const { return sessions_; }

 private:
  void serve() {
    while (!stop_) {
      auto envelope = server_->recv(Millis(20));
      peers_not_reading_ = server_->peers_not_reading();
      handshakes_ = server_->handshake_count();
      most_handshakes_ = std::max<size_t>(most_handshakes_, handshakes_);
      sessions_ = server_->session_count();
      if (!envelope) continue;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        received_.push_back({envelope->peer, server_->peer_identity(envelope->peer),
                             envelope->payload});
      }
      try {
        server_->send(envelope->peer, std::move(envelope->payload));
      } catch (const net::PeerUnreachable&) {
        // The client left; the service goes on.
      }
    }
  }

  std::unique_ptr<SecureServerChannel> server_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peers_not_reading_{0};
  std::atomic<size_t> handshakes_{0}, most_handshakes_{0}, sessions_{0};
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  std::thread thread_;  // last: starts after everything it uses exists
};

// Records every frame a client sends; can corrupt the next one or re-send an
// old one on the same connection. The test keeps a handle to the state.
struct TapState {
  std::vector<net::Bytes> sent;
  bool corrupt_next = false;
  net::ClientChannel* inner = nullptr;
};

class TapClientChannel : public net::ClientChannel {
 public:
  TapClientChannel(std::unique_ptr<net::ClientChannel> inner, std::shared_ptr<TapState> state)
      : inner_(std::move(inner)), state_(std::move(state)) {
    state_->inner = inner_.get();
  }
  void send(net::Bytes payload) override {
    if (state_->corrupt_next) {
      payload.back() ^= 0x01;  // last byte of the last record's AEAD tag
      state_->corrupt_next = false;
    }
    state_->sent.push_back(payload);
    inner_->send(std::move(payload));
  }
  std::optional<net::Bytes> recv(Millis timeout) override { return inner_->recv(timeout); }
  void reconnect() override { inner_->reconnect(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<net::ClientChannel> inner_;
  std::shared_ptr<TapState> state_;
};

// One request/response through a secure client; fails the test on mismatch.
inline void expect_echo(SecureClientChannel& client, const net::Bytes& payload) {
  client.send(payload);
  const auto reply = client.recv(Millis(10000));
  ASSERT_TRUE(reply.has_value()) << "no echo within 10 s";
  EXPECT_TRUE(*reply == payload) << "echo differs (" << reply->size() << " vs " << payload.size()
                                 << " bytes)";
}

}  // namespace cleave::secure::test_support
