// A site's channel to the aggregator counts each message it sends and
// receives under its federation message name, with its size in bytes.
#include "aggregator/counted_channel.h"

#include <gtest/gtest.h>

#include <map>

#include "aggregator/federation_messages.h"
#include "transport/inproc_channel.h"

namespace cleave::aggregator {
namespace {

TEST(CountedClientChannel, CountsEachMessageByNameAndDirection) {
  net::InprocNetwork network;
  auto server = network.bind("aggregator");
  wire::ByteCounter bytes;
  CountedClientChannel site(network.connect("aggregator"), bytes);
  EXPECT_EQ(site.describe(), "inproc:aggregator");

  const net::Bytes request =
      wire::pack(static_cast<uint16_t>(FederationMessage::round_request), RoundRequest{"site-a"});
  const net::Bytes reply = wire::pack(static_cast<uint16_t>(FederationMessage::wait), Wait{250});
  site.send(request);
  site.send(request);
  const std::optional<net::Envelope> got = server->recv(net::Millis(10000));
  ASSERT_TRUE(got.has_value());
  server->send(got->peer, reply);
  server->send(got->peer, net::Bytes{1, 2, 3});   // not a frame
  ASSERT_TRUE(site.recv(net::Millis(10000)).has_value());
  ASSERT_TRUE(site.recv(net::Millis(10000)).has_value());
  EXPECT_FALSE(site.recv(net::Millis(0)).has_value());

  std::map<std::string, wire::ByteCounter::Row> rows;
  for (const wire::ByteCounter::Row& row : bytes.rows()) rows[row.message_type] = row;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows["round_request"].sent_messages, 2u);
  EXPECT_EQ(rows["round_request"].sent_bytes, 2 * request.size());
  EXPECT_EQ(rows["round_request"].received_bytes, 0u);
  EXPECT_EQ(rows["wait"].received_messages, 1u);
  EXPECT_EQ(rows["wait"].received_bytes, reply.size());
  EXPECT_EQ(rows["unreadable"].received_bytes, 3u);
  EXPECT_EQ(bytes.total_bytes(wire::Direction::sent), 2 * request.size());
}

}  // namespace
}  // namespace cleave::aggregator
