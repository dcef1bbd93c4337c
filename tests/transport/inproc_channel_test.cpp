// What only the in-process channel does; the contract every channel keeps is
// tests/secure/channel_contract_test.cpp.
#include "transport/inproc_channel.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

namespace cleave::net {
namespace {

constexpr Millis kWait{10000};

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

TEST(InprocChannelTest, LargeMessageIsMovedNotCopied) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");

  Bytes big(64u << 20);
  std::mt19937 rng(11);
  for (auto& b : big) b = static_cast<uint8_t>(rng());
  const Bytes expected = big;
  const uint8_t* buffer = big.data();

  client->send(std::move(big));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->payload.data(), buffer);   // the very same allocation
  EXPECT_TRUE(request->payload == expected);

  server->send(request->peer, std::move(request->payload));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->data(), buffer);
  EXPECT_TRUE(*reply == expected);
}

TEST(InprocChannelTest, OversizedMessageIsRefusedAndServerKeepsServing) {
  ChannelOptions options;
  options.max_message_bytes = 1 << 20;
  InprocNetwork network(options);
  auto server = network.bind("split");
  auto rogue = network.connect("split");
  auto honest = network.connect("split");

  EXPECT_THROW(rogue->send(Bytes((1 << 20) + 1)), TransportError);
  honest->send(text("hello"));

  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "hello");
  EXPECT_THROW(server->send(request->peer, Bytes((1 << 20) + 1)), TransportError);
  server->send(request->peer, text("world"));
  auto reply = honest->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "world");
  EXPECT_FALSE(server->recv(Millis(0)).has_value());   // nothing else was queued
}

TEST(InprocChannelTest, RecvWakesUpWhenAMessageArrivesFromAnotherThread) {
  InprocNetwork network;
  auto server = network.bind("split");
  std::thread sender([&] {
    auto client = network.connect("split");
    client->send(text("late"));
  });
  auto request = server->recv(kWait);
  sender.join();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "late");
}

TEST(InprocChannelTest, NamesAreExclusiveAndMustExist) {
  InprocNetwork network;
  auto server = network.bind("split");
  EXPECT_EQ(server->endpoint(), "inproc:split");
  EXPECT_EQ(network.connect("split")->describe(), "inproc:split");
  EXPECT_THROW(network.bind("split"), TransportError);
  EXPECT_THROW(network.connect("aggregator"), TransportError);
}

TEST(InprocChannelTest, DestroyedServerMakesClientSendsFailAndFreesTheName) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");
  server.reset();

  EXPECT_THROW(client->send(text("anyone?")), TransportError);
  EXPECT_FALSE(client->recv(Millis(0)).has_value());

  auto restarted = network.bind("split");
  client->reconnect();
  client->send(text("again"));
  auto request = restarted->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "again");
}

TEST(InprocChannelTest, ReplyToDepartedOrUnknownPeerThrowsPeerUnreachable) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");
  client->send(text("hi"));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());

  client.reset();
  EXPECT_THROW(server->send(request->peer, text("bye")), PeerUnreachable);
  EXPECT_THROW(server->send("no such peer", text("bye")), PeerUnreachable);
}

TEST(InprocChannelTest, ReconnectGivesAFreshPeerIdAndDropsTheOldOne) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");
  client->send(text("before"));
  auto first = server->recv(kWait);
  ASSERT_TRUE(first.has_value());

  client->reconnect();
  client->send(text("after"));
  auto second = server->recv(kWait);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(first->peer, second->peer);
  EXPECT_THROW(server->send(first->peer, text("stale")), PeerUnreachable);

  server->send(second->peer, text("fresh"));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "fresh");
}

TEST(InprocChannelTest, ChannelsMayOutliveTheNetworkHandle) {
  std::unique_ptr<ServerChannel> server;
  std::unique_ptr<ClientChannel> client;
  {
    InprocNetwork network;
    server = network.bind("split");
    client = network.connect("split");
  }
  client->send(text("still here"));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "still here");
}

}  // namespace
}  // namespace cleave::net
