// The contract every channel keeps (transport/channel.h), one typed suite run
// over the in-process channel, ZeroMQ on TCP loopback and mutually
// authenticated TLS 1.3 over ZeroMQ: payloads of every size arrive intact both
// ways, each client gets its own replies, receives time out promptly, a send
// to an unknown peer or above the size limit throws, and a reconnected client
// is a new peer. What only one transport does (moving buffers in-process,
// foreign multipart frames on ZeroMQ, certificates) stays in its own tests.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "secure/tls_channel.h"
#include "tests/secure/tls_fixture.h"
#include "transport/inproc_channel.h"
#include "transport/zmq_channel.h"

namespace cleave::net {
namespace {

using namespace secure::test_support;
using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kLimit = 1 << 20;   // max_message_bytes of both ends
constexpr Millis kWait{20000};

ChannelOptions limited(int64_t max_bytes) {
  ChannelOptions options;
  options.max_message_bytes = max_bytes;
  return options;
}

struct InprocTransport {
  static std::string name() { return "inproc"; }
  InprocNetwork network{limited(kLimit)};
  std::unique_ptr<ServerChannel> bind() { return network.bind("contract"); }
  std::unique_ptr<ClientChannel> connect(const std::string&) { return network.connect("contract"); }
};

struct ZmqTransport {
  static std::string name() { return "zmq"; }
  std::unique_ptr<ServerChannel> bind() { return zmq_bind("tcp://127.0.0.1:0", limited(kLimit)); }
  std::unique_ptr<ClientChannel> connect(const std::string& endpoint) {
    return zmq_connect(endpoint, limited(kLimit));
  }
};

// TLS over ZeroMQ, as the services run: the secure layer holds the limit, the
// inner channel leaves room for the records around it.
struct TlsTransport {
  static std::string name() { return "tls"; }
  static const Pki& pki() {
    static const Pki pki = Pki::create(test::scratch_dir("channel_contract_pki"));
    return pki;
  }
  std::unique_ptr<ServerChannel> bind() {
    secure::SecureChannelOptions options = server_options(pki().server, log);
    options.max_message_bytes = kLimit;
    return std::make_unique<secure::SecureServerChannel>(zmq_bind("tcp://127.0.0.1:0", limited(2 * kLimit)),
                                                         options);
  }
  std::unique_ptr<ClientChannel> connect(const std::string& endpoint) {
    secure::SecureChannelOptions options = client_options(pki().site_a, log);
    options.max_message_bytes = kLimit;
    return std::make_unique<secure::SecureClientChannel>(zmq_connect(endpoint, limited(2 * kLimit)), options);
  }
  LogCapture log;
};

// Serves a channel on its own thread (a TLS server's handshakes run in its
// recv), echoing every payload to its sender and keeping the peers it saw.
class Echo {
 public:
  explicit Echo(std::unique_ptr<ServerChannel> channel)
      : channel_(std::move(channel)), endpoint_(channel_->endpoint()), thread_([this] { serve(); }) {}
  ~Echo() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  std::vector<PeerId> peers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return peers_;
  }

 private:
  void serve() {
    while (!stop_) {
      std::optional<Envelope> request = channel_->recv(Millis(20));
      if (!request) continue;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        peers_.push_back(request->peer);
      }
      try {
        channel_->send(request->peer, std::move(request->payload));
      } catch (const PeerUnreachable&) {
        // the client left
      }
    }
  }

  std::unique_ptr<ServerChannel> channel_;
  const std::string endpoint_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<PeerId> peers_;
  std::thread thread_;   // last: starts once the rest exists
};

void expect_echo(ClientChannel& client, const Bytes& payload) {
  client.send(payload);
  const std::optional<Bytes> reply = client.recv(kWait);
  ASSERT_TRUE(reply.has_value()) << "no echo of " << payload.size() << " bytes";
  EXPECT_TRUE(*reply == payload) << "the echo of " << payload.size() << " bytes differs";
}

template <class Transport>
class ChannelContract : public ::testing::Test {
 protected:
  Transport transport_;
};

struct TransportName {
  template <class Transport>
  static std::string GetName(int) {
    return Transport::name();
  }
};

using Transports = ::testing::Types<InprocTransport, ZmqTransport, TlsTransport>;
TYPED_TEST_SUITE(ChannelContract, Transports, TransportName);

TYPED_TEST(ChannelContract, PayloadsOfEverySizeArriveIntactBothWays) {
  Echo echo(this->transport_.bind());
  auto client = this->transport_.connect(echo.endpoint());
  expect_echo(*client, text_bytes("ping"));
  expect_echo(*client, Bytes{});
  expect_echo(*client, random_bytes(kLimit, 7));   // exactly at the limit
  expect_echo(*client, random_bytes(3, 8));
  const std::vector<PeerId> peers = echo.peers();
  ASSERT_EQ(peers.size(), 4u);
  EXPECT_EQ(std::set<PeerId>(peers.begin(), peers.end()).size(), 1u) << "one client is one peer";
}

TYPED_TEST(ChannelContract, ManyClientsInThreadsGetTheirOwnReplies) {
  constexpr int kClients = 4;
  constexpr int kMessages = 50;
  Echo echo(this->transport_.bind());
  std::vector<std::unique_ptr<ClientChannel>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(this->transport_.connect(echo.endpoint()));
  std::vector<int> correct(kClients, 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int m = 0; m < kMessages; ++m) {
        const std::string message = std::to_string(c) + ":" + std::to_string(m);
        clients[c]->send(text_bytes(message));
        const std::optional<Bytes> reply = clients[c]->recv(kWait);
        if (reply && *reply == text_bytes(message)) ++correct[c];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(correct[c], kMessages) << "client " << c;
  const std::vector<PeerId> peers = echo.peers();
  EXPECT_EQ(peers.size(), static_cast<size_t>(kClients * kMessages));
  EXPECT_EQ(std::set<PeerId>(peers.begin(), peers.end()).size(), static_cast<size_t>(kClients));
}

// Within ZeroMQ's poll granularity (a few ms under the timeout, as its own
// tests allow).
TYPED_TEST(ChannelContract, ReceivesTimeOutPromptly) {
  auto server = this->transport_.bind();
  auto waited = [](auto&& receive) {
    const auto start = SteadyClock::now();
    EXPECT_FALSE(receive().has_value());
    return SteadyClock::now() - start;
  };
  auto server_wait = waited([&] { return server->recv(Millis(50)); });
  EXPECT_GE(server_wait, Millis(45));
  EXPECT_LT(server_wait, Millis(1000));

  Echo echo(std::move(server));
  auto client = this->transport_.connect(echo.endpoint());
  expect_echo(*client, text_bytes("connected"));   // a TLS client has its session now
  auto client_wait = waited([&] { return client->recv(Millis(50)); });
  EXPECT_GE(client_wait, Millis(45));
  EXPECT_LT(client_wait, Millis(1000));
  EXPECT_LT(waited([&] { return client->recv(Millis(0)); }), Millis(200));
}

TYPED_TEST(ChannelContract, SendToAnUnknownPeerThrowsPeerUnreachable) {
  auto server = this->transport_.bind();
  EXPECT_THROW(server->send("nobody", text_bytes("hello?")), PeerUnreachable);
}

TYPED_TEST(ChannelContract, SendingAboveTheLimitThrowsAndTheServerKeepsServing) {
  Echo echo(this->transport_.bind());
  auto rogue = this->transport_.connect(echo.endpoint());
  auto honest = this->transport_.connect(echo.endpoint());
  EXPECT_THROW(rogue->send(Bytes(kLimit + 1)), TransportError);
  expect_echo(*honest, text_bytes("still served"));
  expect_echo(*rogue, text_bytes("and so is the sender, within the limit"));
}

// A server's own reply above the limit throws too, and its peer stays connected.
TYPED_TEST(ChannelContract, ReplyingAboveTheLimitThrowsAndThePeerStays) {
  auto server = this->transport_.bind();
  const std::string endpoint = server->endpoint();
  std::optional<Envelope> request;
  std::thread serving([&] {
    request = server->recv(kWait);
    if (!request) return;
    EXPECT_THROW(server->send(request->peer, Bytes(kLimit + 1)), TransportError);
    server->send(request->peer, text_bytes("the small reply"));
  });
  auto client = this->transport_.connect(endpoint);
  client->send(text_bytes("a question"));
  const std::optional<Bytes> reply = client->recv(kWait);
  serving.join();
  ASSERT_TRUE(request.has_value());
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(*reply == text_bytes("the small reply"));
}

TYPED_TEST(ChannelContract, AReconnectedClientIsANewPeer) {
  Echo echo(this->transport_.bind());
  auto client = this->transport_.connect(echo.endpoint());
  expect_echo(*client, text_bytes("before"));
  client->reconnect();
  expect_echo(*client, text_bytes("after"));
  const std::vector<PeerId> peers = echo.peers();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_NE(peers[0], peers[1]);
}

}  // namespace
}  // namespace cleave::net
