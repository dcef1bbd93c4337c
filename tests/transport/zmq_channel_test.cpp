// What only the ZeroMQ channel does; the contract every channel keeps is
// tests/secure/channel_contract_test.cpp.
#include "transport/zmq_channel.h"

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <future>
#include <random>
#include <string>
#include <vector>

namespace cleave::net {
namespace {

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
  EXPECT_EQ(zmq_connect(endpoint)->describe(), endpoint);
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
