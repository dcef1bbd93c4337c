// The services' per-message checks of authenticated peers: ids bound to
// certificate names, EndRound only from the aggregator.
#include "aggregator/peer_policies.h"

#include <gtest/gtest.h>

#include "aggregator/federation_messages.h"
#include "split/peer_policy.h"
#include "split/split_messages.h"

namespace cleave::aggregator {
namespace {

using secure::NodeRole;
using secure::PeerIdentity;

net::Bytes hello_from(const std::string& id) {
  split::Hello hello;
  hello.client_id = id;
  return wire::pack(static_cast<uint16_t>(split::MessageType::hello), hello);
}

net::Bytes end_round() {
  return wire::pack(static_cast<uint16_t>(split::MessageType::end_round), split::EndRound{3, {}});
}

TEST(PeerPolicies, LeadingClientIdOfEveryClientRequest) {
  EXPECT_EQ(split::leading_client_id(hello_from("site-a")), "site-a");
  split::ForwardRequest forward;
  forward.key = {"site-b", 2, 7};
  EXPECT_EQ(split::leading_client_id(wire::pack(static_cast<uint16_t>(split::MessageType::forward), forward)), "site-b");
  const Register reg{"site-c", "fp", 10};
  EXPECT_EQ(split::leading_client_id(pack_message(FederationMessage::register_client, reg)),
            "site-c");
  EXPECT_FALSE(split::leading_client_id(net::Bytes{1, 2, 3}));
}

TEST(PeerPolicies, SplitServerBindsIdsToCertificatesAndEndRoundToTheAggregator) {
  const secure::PeerPolicy policy = split::split_server_policy();
  EXPECT_EQ(policy.roles, (std::set<NodeRole>{NodeRole::client, NodeRole::aggregator}));
  const PeerIdentity site_a{"site-a", NodeRole::client};
  const PeerIdentity agg{"agg", NodeRole::aggregator};
  EXPECT_FALSE(policy.check(site_a, hello_from("site-a")));
  const auto spoofed = policy.check(site_a, hello_from("site-b"));
  ASSERT_TRUE(spoofed);
  EXPECT_NE(spoofed->find("certificate is for 'site-a'"), std::string::npos) << *spoofed;
  ASSERT_TRUE(policy.check(site_a, end_round()));
  EXPECT_FALSE(policy.check(agg, end_round()));
  EXPECT_TRUE(policy.check(agg, hello_from("agg")));   // an aggregator does not train
  // Malformed frames pass: the split server's decoder answers them itself.
  EXPECT_FALSE(policy.check(site_a, net::Bytes{1, 2, 3}));

  // The refusal is an error reply a split client reads as a refusal.
  const net::Bytes reply = policy.refusal("no");
  EXPECT_EQ(wire::unpack<split::ErrorReply>(reply, static_cast<uint16_t>(split::MessageType::error), 1 << 20).message,
            "no");
}

// split_server.previous: a later hop of a chain serves the split server
// before it, which relays every site's requests under the site's id and the
// aggregator's round closes; another split server and the sites are refused.
TEST(PeerPolicies, ALaterHopServesOnlyThePreviousSplitServer) {
  const secure::PeerPolicy policy = split::split_server_policy("split-1");
  EXPECT_EQ(policy.roles, (std::set<NodeRole>{NodeRole::split_server, NodeRole::aggregator}));
  const PeerIdentity previous{"split-1", NodeRole::split_server};
  const PeerIdentity other{"split-9", NodeRole::split_server};
  EXPECT_FALSE(policy.check(previous, hello_from("site-a")));
  EXPECT_FALSE(policy.check(previous, hello_from("site-b")));
  EXPECT_FALSE(policy.check(previous, end_round()));
  const auto refused = policy.check(other, hello_from("site-a"));
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("only split server 'split-1'"), std::string::npos) << *refused;
  EXPECT_TRUE(policy.check(other, end_round()));
  EXPECT_FALSE(policy.check(PeerIdentity{"agg", NodeRole::aggregator}, end_round()));
  // The first hop's policy admits no split server at all.
  EXPECT_EQ(split::split_server_policy().roles.count(NodeRole::split_server), 0u);
}

TEST(PeerPolicies, AggregatorAcceptsSitesOnlyUnderTheirOwnName) {
  const secure::PeerPolicy policy = aggregator_policy();
  EXPECT_EQ(policy.roles, (std::set<NodeRole>{NodeRole::client}));
  const PeerIdentity site_a{"site-a", NodeRole::client};
  const RoundRequest own{"site-a"}, other{"site-z"};
  EXPECT_FALSE(policy.check(site_a, pack_message(FederationMessage::round_request, own)));
  EXPECT_TRUE(policy.check(site_a, pack_message(FederationMessage::round_request, other)));
  const net::Bytes reply = policy.refusal("why");
  EXPECT_EQ(unpack_message<FederationErrorReply>(reply, FederationMessage::error,
                                                                         1 << 20)
                .message,
            "why");
}

}  // namespace
}  // namespace cleave::aggregator
