// The aggregator service under secure aggregation, driven message by message
// with a manual clock: scripted sites run the real SiteSession, one drops
// out, and the round closes with exactly the survivors' weighted mean.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "aggregator/aggregator_service.h"
#include "aggregator/secure_encoding.h"
#include "secagg/key_signature.h"
#include "secagg/secagg_messages.h"
#include "secagg/site_session.h"
#include "secure/ca.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave::aggregator {
namespace {

using test::Reply;
using test::ScriptedSite;

const std::vector<std::string> kIds = {"site-a", "site-b", "site-c", "site-d"};

class SecureService : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::scratch_dir("secure_aggregation_service");
    secure::ca_init(root_ + "/ca", "secure-service-test");
    secure::IssueOptions fast;
    fast.durable = false;
    const auto nodes = secure::ca_issue_many(root_ + "/ca", secure::NodeRole::client, kIds, root_ + "/nodes", fast);
    for (size_t i = 0; i < kIds.size(); ++i) signers_[kIds[i]] = std::make_unique<secagg::KeySigner>(nodes[i].identity);
    verifier_ = std::make_shared<secagg::KeyVerifier>(nodes[0].identity);
    options_.rounds = 3;
    options_.clients_per_round = 4;
    options_.min_clients = 1;
    options_.round_deadline_ms = 10000;
    options_.secure_aggregation.enabled = true;
    options_.secure_aggregation.phase_timeout_ms = 1000;
    options_.seed = 1;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  template <class M>
  Reply send(ScriptedSite& site, FederationMessage type, const M& message) {
    return site.send(pack_message(type, message));
  }
  static void accepted(const Reply& reply) {
    const UpdateAck ack = reply.as<UpdateAck>(FederationMessage::update_ack);
    EXPECT_TRUE(ack.accepted) << ack.reason;
  }
  Reply poll(ScriptedSite& site, uint32_t round, secagg::Phase phase) {
    return send(site, FederationMessage::secagg_poll, secagg::Poll{site.id(), round, uint8_t(phase)});
  }

  std::string root_;
  std::map<std::string, std::unique_ptr<secagg::KeySigner>> signers_;
  std::shared_ptr<secagg::KeyVerifier> verifier_;
  AggregatorOptions options_;
};

TEST_F(SecureService, ASiteDroppingAfterItsSharesLeavesTheSurvivorsWeightedMean) {
  const GlobalAdapters initial = test::small_global();
  auto clock = std::make_shared<ManualClock>();
  AggregatorService service(options_, initial, [](const std::string&) {}, clock);
  std::vector<std::unique_ptr<ScriptedSite>> sites;
  const std::vector<int64_t> samples = {10, 20, 30, 40};
  for (size_t i = 0; i < kIds.size(); ++i) {
    sites.push_back(std::make_unique<ScriptedSite>(service, kIds[i]));
    sites.back()->register_site(test::kTestFingerprint, samples[i]);
  }
  std::vector<std::unique_ptr<secagg::SiteSession>> sessions;
  secagg::RoundParams params;
  for (auto& site : sites) {
    const auto assignment = site->poll().as<RoundAssignment>(FederationMessage::round_assignment);
    params = assignment.secure;
    ASSERT_TRUE(params.enabled);
    EXPECT_EQ(params.threshold, 3u);
    EXPECT_EQ(params.sampled, kIds);
    EXPECT_EQ(params.metric_names, secure_metric_names());
    EXPECT_EQ(params.vector_length, secure_vector_length(initial.tensors, params.metric_names.size()));
    sessions.push_back(std::make_unique<secagg::SiteSession>(site->id(), 0, params, *signers_.at(site->id()),
                                                             *verifier_, secagg::SiteRequirements{}));
    accepted(send(*site, FederationMessage::secagg_keys, sessions.back()->advertise()));
  }
  // A second poll for the round no longer hands out the assignment.
  EXPECT_EQ(sites[0]->poll().type, FederationMessage::wait);
  for (size_t i = 0; i < sites.size(); ++i) {
    const auto keys = poll(*sites[i], 0, secagg::Phase::keys).as<secagg::PeerKeys>(FederationMessage::secagg_peer_keys);
    accepted(send(*sites[i], FederationMessage::secagg_shares, sessions[i]->share(keys)));
  }
  std::map<std::string, NamedTensors> deltas;
  for (size_t i = 0; i < 3; ++i) {   // site-d never sends its masked input
    sessions[i]->receive(
        poll(*sites[i], 0, secagg::Phase::shares).as<secagg::PeerShares>(FederationMessage::secagg_peer_shares));
    deltas[kIds[i]] = test::seeded_delta(initial.tensors, 50 + i);
    EncodedUpdate encoded = encode_update(deltas[kIds[i]], samples[i], {{"train_loss", 1.0 + i}}, params);
    accepted(send(*sites[i], FederationMessage::secagg_masked_input, sessions[i]->mask(std::move(encoded.words))));
  }
  // An update in the clear is refused in a secure round.
  EXPECT_FALSE(sites[3]->send_update(0, deltas["site-a"], 40).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_EQ(poll(*sites[0], 0, secagg::Phase::consistency).type, FederationMessage::wait);
  clock->advance(options_.round_deadline_ms);
  service.tick();
  for (size_t i = 0; i < 3; ++i) {
    const auto check = poll(*sites[i], 0, secagg::Phase::consistency)
                           .as<secagg::ConsistencyCheck>(FederationMessage::secagg_consistency_check);
    EXPECT_EQ(check.survivors, (std::vector<std::string>{"site-a", "site-b", "site-c"}));
    accepted(send(*sites[i], FederationMessage::secagg_consistency_signature, sessions[i]->confirm(check)));
  }
  for (size_t i = 0; i < 3; ++i) {
    const auto request =
        poll(*sites[i], 0, secagg::Phase::unmask).as<secagg::UnmaskRequest>(FederationMessage::secagg_unmask_request);
    EXPECT_EQ(request.dropped, std::vector<std::string>{"site-d"});
    accepted(send(*sites[i], FederationMessage::secagg_unmask_shares, sessions[i]->unmask(request)));
  }
  ASSERT_EQ(service.completed_rounds(), 1u) << service.failure();
  const RoundSummary summary = service.history().at(0);
  EXPECT_TRUE(summary.failure.empty()) << summary.failure;
  EXPECT_EQ(summary.reported, (std::vector<std::string>{"site-a", "site-b", "site-c"}));
  EXPECT_EQ(summary.dropouts, (std::map<std::string, std::string>{{"site-d", "masked_input"}}));
  EXPECT_EQ(summary.num_samples, 60);
  // The metrics' mean (at 2^-16 fixed point), and no site's own.
  EXPECT_NEAR(summary.metrics.at("train_loss"), (1.0 * 10 + 2.0 * 20 + 3.0 * 30) / 60, 1e-4);
  EXPECT_EQ(summary.metrics.count("eval_perplexity"), 0u) << "no site reported it";
  EXPECT_TRUE(summary.client_metrics.empty());
  NamedTensors expected;
  for (const auto& [name, start] : initial.tensors) {
    at::Tensor sum = at::zeros(start.sizes(), at::kDouble);
    for (size_t i = 0; i < 3; ++i) sum += deltas[kIds[i]].at(name).to(at::kDouble) * double(samples[i]);
    expected[name] = start.to(at::kDouble) + sum / 60.0;
  }
  test::expect_tensors_near(service.global().tensors, expected, std::ldexp(1.0, -25) + 1e-7);
  // A late poll for the closed round is told it ended.
  EXPECT_EQ(poll(*sites[3], 0, secagg::Phase::shares).type, FederationMessage::secagg_abort);
}

TEST_F(SecureService, TooFewSitesFailTheRoundWithoutAnUpdateAndTheNextRoundStarts) {
  const GlobalAdapters initial = test::small_global();
  auto clock = std::make_shared<ManualClock>();
  AggregatorService service(options_, initial, [](const std::string&) {}, clock);
  std::vector<std::unique_ptr<ScriptedSite>> sites;
  for (const std::string& id : kIds) {
    sites.push_back(std::make_unique<ScriptedSite>(service, id));
    sites.back()->register_site();
  }
  for (size_t i = 0; i < 2; ++i) {   // two of four send keys: the threshold is 3
    const auto assignment = sites[i]->poll().as<RoundAssignment>(FederationMessage::round_assignment);
    secagg::SiteSession session(sites[i]->id(), 0, assignment.secure, *signers_.at(sites[i]->id()), *verifier_, {});
    accepted(send(*sites[i], FederationMessage::secagg_keys, session.advertise()));
  }
  clock->advance(options_.secure_aggregation.phase_timeout_ms);
  service.tick();
  ASSERT_EQ(service.completed_rounds(), 1u);
  const RoundSummary summary = service.history().at(0);
  EXPECT_NE(summary.failure.find("2 of 4 sites sent their keys, fewer than the threshold 3"), std::string::npos)
      << summary.failure;
  EXPECT_TRUE(summary.reported.empty());
  test::expect_tensors_equal(service.global().tensors, initial.tensors);
  EXPECT_EQ(service.open_round(), std::optional<uint32_t>(1));
  EXPECT_EQ(service.state(), RunState::in_round);
  EXPECT_EQ(poll(*sites[0], 0, secagg::Phase::keys).type, FederationMessage::secagg_abort);
}

// With the sites' CA, the aggregator refuses keys whose signature does not
// verify, so the honest sites never see them and the round goes on.
TEST_F(SecureService, WithAVerifierTheAggregatorRefusesKeysThatDoNotVerify) {
  auto clock = std::make_shared<ManualClock>();
  AggregatorService service(options_, test::small_global(), [](const std::string&) {}, clock);
  service.verify_site_signatures(verifier_);
  std::vector<std::unique_ptr<ScriptedSite>> sites;
  for (const std::string& id : kIds) {
    sites.push_back(std::make_unique<ScriptedSite>(service, id));
    sites.back()->register_site();
  }
  std::vector<std::unique_ptr<secagg::SiteSession>> sessions;
  for (auto& site : sites) {
    const auto assignment = site->poll().as<RoundAssignment>(FederationMessage::round_assignment);
    sessions.push_back(std::make_unique<secagg::SiteSession>(site->id(), 0, assignment.secure,
                                                             *signers_.at(site->id()), *verifier_,
                                                             secagg::SiteRequirements{}));
  }
  secagg::Keys forged = sessions[3]->advertise();
  forged.signature.back() ^= 1;
  const UpdateAck refused =
      send(*sites[3], FederationMessage::secagg_keys, forged).as<UpdateAck>(FederationMessage::update_ack);
  EXPECT_FALSE(refused.accepted);
  EXPECT_NE(refused.reason.find("do not verify"), std::string::npos) << refused.reason;
  for (size_t i = 0; i < 3; ++i) accepted(send(*sites[i], FederationMessage::secagg_keys, sessions[i]->advertise()));
  clock->advance(options_.secure_aggregation.phase_timeout_ms);
  service.tick();
  // The honest sites get the three good keys and share among themselves.
  for (size_t i = 0; i < 3; ++i) {
    const auto keys = poll(*sites[i], 0, secagg::Phase::keys).as<secagg::PeerKeys>(FederationMessage::secagg_peer_keys);
    EXPECT_EQ(keys.peers.size(), 3u);
    accepted(send(*sites[i], FederationMessage::secagg_shares, sessions[i]->share(keys)));
  }
  EXPECT_EQ(service.history().size(), 0u);
  EXPECT_EQ(service.open_round(), std::optional<uint32_t>(0));
}

TEST_F(SecureService, StrategiesThatNeedEveryUpdateAreRefusedAtStart) {
  options_.strategy.name = "trimmed_mean";
  try {
    AggregatorService service(options_, test::small_global(), [](const std::string&) {});
    FAIL() << "trimmed_mean was accepted under secure aggregation";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("only their sum"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cleave::aggregator
