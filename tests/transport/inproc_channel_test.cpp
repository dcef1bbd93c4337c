#include "transport/inproc_channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cleave::net {
namespace {

using Clock = std::chrono::steady_clock;

constexpr Millis kWait{10000};

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

TEST(InprocChannelTest, RoundTrip) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");
  EXPECT_EQ(server->endpoint(), "inproc:split");
  EXPECT_EQ(client->describe(), "inproc:split");

  client->send(text("ping"));
  auto request = server->recv(kWait);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(text(request->payload), "ping");

  server->send(request->peer, text("pong"));
  auto reply = client->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "pong");
}

TEST(InprocChannelTest, ManyClientsInThreadsGetTheirOwnReplies) {
  constexpr int kClients = 8;
  constexpr int kMessages = 200;
  InprocNetwork network;
  auto server = network.bind("split");

  std::vector<int> correct_replies(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = network.connect("split");
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

TEST(InprocChannelTest, RecvTimeoutReturnsNulloptPromptly) {
  InprocNetwork network;
  auto server = network.bind("split");
  auto client = network.connect("split");

  auto start = Clock::now();
  EXPECT_FALSE(server->recv(Millis(50)).has_value());
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, Millis(50));
  EXPECT_LT(waited, Millis(1000));

  start = Clock::now();
  EXPECT_FALSE(client->recv(Millis(50)).has_value());
  waited = Clock::now() - start;
  EXPECT_GE(waited, Millis(50));
  EXPECT_LT(waited, Millis(1000));
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
