#include "transport/zmq_channel.h"

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cleave::net {
namespace {

using Clock = std::chrono::steady_clock;

// Generous: only reached when something is broken.
constexpr Millis kWait{10000};
constexpr const char* kAnyPort = "tcp://127.0.0.1:0";

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

Bytes random_bytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes bytes(size);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

TEST(ZmqChannelTest, PortZeroBindingReportsTheRealPort) {
  auto server = zmq_bind(kAnyPort);
  const std::string endpoint = server->endpoint();
  const std::string prefix = "tcp://127.0.0.1:";
  ASSERT_EQ(endpoint.rfind(prefix, 0), 0u) << endpoint;
  const int port = std::stoi(endpoint.substr(prefix.size()));
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
}

TEST(ZmqChannelTest, RoundTrip) {
  auto server = zmq_bind(kAnyPort);
  auto client = zmq_connect(server->endpoint());
  EXPECT_EQ(client->describe(), server->endpoint());

  client->send(text("ping"));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "ping");
  EXPECT_FALSE(request->peer.empty());

  server->send(request->peer, text("pong"));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "pong");
}

TEST(ZmqChannelTest, EmptyPayloadRoundTrip) {
  auto server = zmq_bind(kAnyPort);
  auto client = zmq_connect(server->endpoint());
  client->send(Bytes{});
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_TRUE(request->payload.empty());
  server->send(request->peer, Bytes{});
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(reply->empty());
}

TEST(ZmqChannelTest, ManyClientsGetTheirOwnReplies) {
  constexpr int kClients = 8;
  constexpr int kMessages = 50;
  auto server = zmq_bind(kAnyPort);
  const std::string endpoint = server->endpoint();

  std::vector<int> correct_replies(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = zmq_connect(endpoint);   // created in its own thread: sockets stay single-threaded
      for (int m = 0; m < kMessages; ++m) client->send(text(std::to_string(c) + ":" + std::to_string(m)));
      for (int m = 0; m < kMessages; ++m) {
        auto reply = client->recv(kWait);
        if (!reply) return;
        if (text(*reply) == "re " + std::to_string(c) + ":" + std::to_string(m)) ++correct_replies[c];
      }
    });
  }

  std::set<PeerId> peers;
  int served = 0;
  for (; served < kClients * kMessages; ++served) {
    auto request = server->recv(kWait);
    if (!request) break;
    peers.insert(request->peer);
    server->send(request->peer, text("re " + text(request->payload)));
  }
  for (auto& t : clients) t.join();

  EXPECT_EQ(served, kClients * kMessages);
  EXPECT_EQ(peers.size(), static_cast<size_t>(kClients));
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(correct_replies[c], kMessages) << "client " << c;
}

TEST(ZmqChannelTest, LargeMessageArrivesIntactBothWays) {
  const Bytes big = random_bytes(64u << 20, 7);
  auto server = zmq_bind(kAnyPort);
  auto client = zmq_connect(server->endpoint());

  client->send(big);
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  ASSERT_EQ(request->payload.size(), big.size());
  EXPECT_TRUE(request->payload == big);

  server->send(request->peer, std::move(request->payload));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(*reply == big);
}

TEST(ZmqChannelTest, OversizedMessageIsNotDeliveredAndServerKeepsServing) {
  ChannelOptions strict;
  strict.max_message_bytes = 1 << 20;
  auto server = zmq_bind(kAnyPort, strict);

  // A peer configured with a bigger limit than the server's.
  ChannelOptions lax;
  lax.max_message_bytes = 4 << 20;
  auto rogue = zmq_connect(server->endpoint(), lax);
  auto honest = zmq_connect(server->endpoint(), strict);

  rogue->send(Bytes(2 << 20, 0xAB));
  honest->send(text("hello"));

  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "hello");
  server->send(request->peer, text("world"));
  auto reply = honest->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "world");

  // The oversized message never shows up.
  EXPECT_FALSE(server->recv(Millis(300)).has_value());
}

TEST(ZmqChannelTest, SendingAboveTheOwnLimitThrows) {
  ChannelOptions options;
  options.max_message_bytes = 1024;
  auto server = zmq_bind(kAnyPort, options);
  auto client = zmq_connect(server->endpoint(), options);
  EXPECT_THROW(client->send(Bytes(1025)), TransportError);

  client->send(Bytes(1024, 1));   // exactly the limit is fine
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->payload.size(), 1024u);
  EXPECT_THROW(server->send(request->peer, Bytes(1025)), TransportError);
}

TEST(ZmqChannelTest, RecvTimeoutReturnsNulloptPromptly) {
  auto server = zmq_bind(kAnyPort);
  auto client = zmq_connect(server->endpoint());

  auto start = Clock::now();
  EXPECT_FALSE(server->recv(Millis(50)).has_value());
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, Millis(45));
  EXPECT_LT(waited, Millis(1000));

  start = Clock::now();
  EXPECT_FALSE(client->recv(Millis(50)).has_value());
  waited = Clock::now() - start;
  EXPECT_GE(waited, Millis(45));
  EXPECT_LT(waited, Millis(1000));

  start = Clock::now();
  EXPECT_FALSE(client->recv(Millis(0)).has_value());
  EXPECT_LT(Clock::now() - start, Millis(200));
}

TEST(ZmqChannelTest, ReplyToUnknownPeerThrowsPeerUnreachable) {
  auto server = zmq_bind(kAnyPort);
  EXPECT_THROW(server->send("no such peer", text("hi")), PeerUnreachable);
}

TEST(ZmqChannelTest, ReconnectGivesAFreshPeerId) {
  auto server = zmq_bind(kAnyPort);
  auto client = zmq_connect(server->endpoint());
  client->send(text("before"));
  auto first = server->recv(kWait);
  ASSERT_TRUE(first.has_value());

  client->reconnect();
  client->send(text("after"));
  auto second = server->recv(kWait);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(text(second->payload), "after");
  EXPECT_NE(first->peer, second->peer);

  server->send(second->peer, text("welcome back"));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "welcome back");
}

TEST(ZmqChannelTest, MultipartMessagesFromForeignPeersAreDropped) {
  auto server = zmq_bind(kAnyPort);
  zmq::context_t context;
  zmq::socket_t foreign(context, zmq::socket_type::dealer);
  foreign.set(zmq::sockopt::linger, 0);
  foreign.connect(server->endpoint());
  foreign.send(zmq::str_buffer("part one"), zmq::send_flags::sndmore);
  foreign.send(zmq::str_buffer("part two"), zmq::send_flags::none);
  foreign.send(zmq::str_buffer("single"), zmq::send_flags::none);

  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "single");
}

// A peer that never reads must not stall the server: once its queue is full,
// send() throws PeerNotReading at once, and other peers are still served.
TEST(ZmqChannelTest, APeerThatNeverReadsMakesSendThrowInsteadOfBlocking) {
  ChannelOptions options;
  options.peer_queue_messages = 4;
  options.socket_send_buffer_bytes = 4096;
  auto server = zmq_bind(kAnyPort, options);

  zmq::context_t context;
  zmq::socket_t silent(context, zmq::socket_type::dealer);
  silent.set(zmq::sockopt::linger, 0);
  silent.set(zmq::sockopt::rcvhwm, 1);
  silent.set(zmq::sockopt::rcvbuf, 4096);
  silent.connect(server->endpoint());
  silent.send(zmq::str_buffer("hello, then silence"), zmq::send_flags::none);
  auto hello = server->recv(kWait);
  ASSERT_TRUE(hello.has_value());

  // On another thread, so that a send that blocks fails the test instead of hanging it.
  auto flood = std::async(std::launch::async, [&]() -> int {
    for (int sent = 0; sent < 100000; ++sent) {
      try {
        server->send(hello->peer, random_bytes(64 << 10, static_cast<uint32_t>(sent)));
      } catch (const PeerNotReading& e) {
        EXPECT_NE(std::string(e.what()).find("not reading"), std::string::npos) << e.what();
        return sent;
      }
    }
    return -1;
  });
  ASSERT_EQ(flood.wait_for(kWait), std::future_status::ready) << "send() blocked on a peer that does not read";
  const int sent = flood.get();
  EXPECT_GE(sent, options.peer_queue_messages) << "the queue bound was not honoured";
  EXPECT_GT(sent, 0);

  auto honest = zmq_connect(server->endpoint());
  honest->send(text("ping"));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  server->send(request->peer, text("pong"));
  auto reply = honest->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "pong");
}

TEST(ZmqChannelTest, BadEndpointsAndTakenPortsThrow) {
  auto server = zmq_bind(kAnyPort);
  EXPECT_THROW(zmq_bind(server->endpoint()), TransportError);
  EXPECT_THROW(zmq_bind("not an endpoint"), TransportError);
  EXPECT_THROW(zmq_connect("not an endpoint"), TransportError);
}

TEST(ZmqChannelTest, InvalidOptionsThrow) {
  ChannelOptions options;
  options.max_message_bytes = 0;
  EXPECT_THROW(zmq_bind(kAnyPort, options), TransportError);
  EXPECT_THROW(zmq_connect("tcp://127.0.0.1:1", options), TransportError);
  ChannelOptions no_queue;
  no_queue.peer_queue_messages = 0;
  EXPECT_THROW(zmq_bind(kAnyPort, no_queue), TransportError);
}

}  // namespace
}  // namespace cleave::net
