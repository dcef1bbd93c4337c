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
