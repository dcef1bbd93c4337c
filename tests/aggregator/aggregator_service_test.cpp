// The aggregator's round loop driven message by message through handle(),
// with a manual clock: FedAvg, dropouts at the deadline, rejections that never
// block a round, extend/fail, and kill-and-restart from a checkpoint.
#include "aggregator/aggregator_service.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "aggregator/aggregator_checkpoint.h"
#include "privacy/rdp_accountant.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave::aggregator {
namespace {

using test::ScriptedSite;

using Harness = test::ServiceHarness;

AggregatorOptions options_for(int64_t rounds, int64_t per_round, int64_t min_clients) {
  AggregatorOptions options;
  options.rounds = rounds;
  options.clients_per_round = per_round;
  options.min_clients = min_clients;
  options.round_deadline_ms = 1000;
  options.poll_interval_ms = 5;
  options.seed = 17;
  return options;
}

// global + sum n_i delta_i / sum n_i, in float64.
NamedTensors fedavg_by_hand(const NamedTensors& global, const std::vector<std::pair<NamedTensors, int64_t>>& updates) {
  NamedTensors out;
  double total = 0;
  for (const auto& [delta, n] : updates) total += static_cast<double>(n);
  for (const auto& [name, tensor] : global) {
    at::Tensor sum = at::zeros(tensor.sizes(), at::kDouble);
    for (const auto& [delta, n] : updates) sum += delta.at(name).to(at::kDouble) * static_cast<double>(n);
    out[name] = tensor.to(at::kDouble) + sum / total;
  }
  return out;
}

// A long-lived aggregator keeps the last kHistoryRounds round summaries (each
// holds every sampled site's id and metrics), not one per round it ever ran.
TEST(AggregatorService, HistoryKeepsOnlyTheLastRounds) {
  const int64_t rounds = static_cast<int64_t>(AggregatorService::kHistoryRounds) + 5;
  Harness h(options_for(rounds, 1, 1));
  ScriptedSite a(h.service, "a");
  a.register_site();
  const NamedTensors global = h.service.global().tensors;
  for (int64_t r = 0; r < rounds; ++r) {
    a.take_assignment(global, static_cast<uint32_t>(r));
    ASSERT_TRUE(a.send_update(static_cast<uint32_t>(r), test::seeded_delta(global, 1, 0.0), 3, {{"train_loss", 1.0}})
                    .as<UpdateAck>(FederationMessage::update_ack)
                    .accepted);
  }
  EXPECT_EQ(h.service.state(), RunState::finished);
  const std::vector<RoundSummary> history = h.service.history();
  ASSERT_EQ(history.size(), AggregatorService::kHistoryRounds);
  EXPECT_EQ(history.front().round, 5u);
  EXPECT_EQ(history.back().round, static_cast<uint32_t>(rounds - 1));
}

TEST(AggregatorService, OneFedAvgRoundEqualsTheWeightedMeanOfTheDeltas) {
  Harness h(options_for(1, 3, 3));
  ScriptedSite a(h.service, "site-a"), b(h.service, "site-b"), c(h.service, "site-c");
  for (ScriptedSite* site : {&a, &b, &c}) {
    EXPECT_EQ(site->poll().type, FederationMessage::error) << "polling before registering must be refused";
    site->register_site().as<RegisterReply>(FederationMessage::register_reply);
  }
  ASSERT_EQ(h.service.open_round(), std::optional<uint32_t>(0));
  const NamedTensors global = h.service.global().tensors;
  std::vector<std::pair<NamedTensors, int64_t>> sent;
  int64_t samples = 10;
  uint64_t seed = 100;
  for (ScriptedSite* site : {&a, &b, &c}) {
    test::expect_tensors_equal(site->take_assignment(global, 0), global);
    sent.emplace_back(test::seeded_delta(global, seed++), samples);
    const auto ack = site->send_update(0, sent.back().first, samples, {{"train_loss", 1.0 + samples}})
                         .as<UpdateAck>(FederationMessage::update_ack);
    EXPECT_TRUE(ack.accepted) << ack.reason;
    samples += 10;
  }
  EXPECT_EQ(h.service.state(), RunState::finished);
  test::expect_tensors_near(h.service.global().tensors, fedavg_by_hand(global, sent), 1e-6);
  const RoundSummary summary = h.service.history().at(0);
  EXPECT_EQ(summary.reported, (std::vector<std::string>{"site-a", "site-b", "site-c"}));
  EXPECT_EQ(summary.num_samples, 60);
  EXPECT_NEAR(summary.metrics.at("train_loss"), (11.0 * 10 + 21.0 * 20 + 31.0 * 30) / 60, 1e-12);
  const auto finished = a.poll().as<Finished>(FederationMessage::finished);
  EXPECT_EQ(finished.rounds_completed, 1u);
  EXPECT_FALSE(finished.failed);
}

// client_lr_min_ratio < 1: the rate each round's assignment carries decays by a
// cosine across the rounds, 0.02 at round 0 to 0.02 x 0.1 at round 4, through
// 0.02 x (0.1 + 0.9 x 0.5) at round 2; 1 keeps client_lr every round.
TEST(AggregatorService, TheRateSentToTheSitesDecaysAcrossTheRounds) {
  for (const double min_ratio : {0.1, 1.0}) {
    SCOPED_TRACE("client_lr_min_ratio " + std::to_string(min_ratio));
    AggregatorOptions options = options_for(5, 1, 1);
    options.client_lr = 0.02;
    options.client_lr_min_ratio = min_ratio;
    Harness h(options);
    ScriptedSite a(h.service, "a");
    a.register_site();
    const NamedTensors global = h.service.global().tensors;
    std::vector<double> sent;
    for (uint32_t r = 0; r < 5; ++r) {
      const auto assignment = a.poll().as<RoundAssignment>(FederationMessage::round_assignment);
      ASSERT_EQ(assignment.round, r);
      sent.push_back(assignment.config.lr);
      ASSERT_TRUE(a.send_update(r, test::seeded_delta(global, r + 1, 0.0), 3).as<UpdateAck>(FederationMessage::update_ack)
                      .accepted);
    }
    for (uint32_t r = 0; r < 5; ++r) {
      const double cosine = 0.5 * (1.0 + std::cos(M_PI * r / 4.0));
      EXPECT_NEAR(sent[r], 0.02 * (min_ratio + (1.0 - min_ratio) * cosine), 1e-15) << "round " << r;
    }
    EXPECT_NEAR(sent.back(), 0.02 * min_ratio, 1e-15);
  }
}

TEST(AggregatorService, ADecayWithoutARateToDecayIsRefused) {
  AggregatorOptions options = options_for(5, 1, 1);
  options.client_lr_min_ratio = 0.1;   // client_lr 0: each site's own, nothing to decay
  try {
    options.validate();
    FAIL() << "accepted client_lr_min_ratio without client_lr";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("set client_lr"), std::string::npos) << error.what();
  }
  options.client_lr = 0.01;
  options.client_lr_min_ratio = 1.5;
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

TEST(AggregatorService, ARoundClosesAtItsDeadlineWithoutTheSiteThatDroppedOut) {
  Harness h(options_for(2, 3, 2));
  ScriptedSite a(h.service, "a"), b(h.service, "b"), gone(h.service, "gone");
  for (ScriptedSite* site : {&a, &b, &gone}) site->register_site();
  const NamedTensors global = h.service.global().tensors;
  for (ScriptedSite* site : {&a, &b, &gone}) site->take_assignment(global, 0);   // all three start training
  const NamedTensors delta_a = test::seeded_delta(global, 1), delta_b = test::seeded_delta(global, 2);
  EXPECT_TRUE(a.send_update(0, delta_a, 5).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_TRUE(b.send_update(0, delta_b, 15).as<UpdateAck>(FederationMessage::update_ack).accepted);

  h.clock->advance(999);
  h.service.tick();
  EXPECT_EQ(h.service.open_round(), std::optional<uint32_t>(0)) << "closed before the deadline";
  EXPECT_EQ(a.poll().type, FederationMessage::wait) << "a site that reported waits for the next round";
  h.clock->advance(1);
  h.service.tick();
  ASSERT_EQ(h.service.completed_rounds(), 1u);
  test::expect_tensors_near(h.service.global().tensors, fedavg_by_hand(global, {{delta_a, 5}, {delta_b, 15}}), 1e-6);
  EXPECT_EQ(h.service.history().at(0).reported, (std::vector<std::string>{"a", "b"}));

  // The straggler's update for the closed round is refused; it gets round 1.
  const auto late = gone.send_update(0, test::seeded_delta(global, 3), 5).as<UpdateAck>(FederationMessage::update_ack);
  EXPECT_FALSE(late.accepted);
  EXPECT_NE(late.reason.find("late update"), std::string::npos) << late.reason;
  ASSERT_EQ(h.service.late_rejections().size(), 1u);
  gone.take_assignment(global, 1);
}

TEST(AggregatorService, BadUpdatesAreRejectedAndTheRoundStillCompletes) {
  AggregatorOptions options = options_for(2, 4, 2);
  options.min_registered = 5;   // five registered, four sampled each round
  Harness h(options);
  std::vector<std::unique_ptr<ScriptedSite>> sites;
  for (const char* id : {"s1", "s2", "s3", "s4", "s5"}) {
    sites.push_back(std::make_unique<ScriptedSite>(h.service, id));
    sites.back()->register_site();
  }
  const std::vector<std::string> sampled = h.service.sampled_clients();
  ASSERT_EQ(sampled.size(), 4u);
  auto site = [&](const std::string& id) -> ScriptedSite& {
    for (auto& s : sites) {
      if (s->id() == id) return *s;
    }
    throw std::logic_error("no site " + id);
  };
  std::string outsider;
  for (auto& s : sites) {
    if (std::find(sampled.begin(), sampled.end(), s->id()) == sampled.end()) outsider = s->id();
  }
  const NamedTensors global = h.service.global().tensors;
  ScriptedSite& good1 = site(sampled[0]);
  ScriptedSite& good2 = site(sampled[1]);
  ScriptedSite& nan_site = site(sampled[2]);
  ScriptedSite& shape_site = site(sampled[3]);
  ScriptedSite stranger(h.service, "stranger");
  auto rejected = [](const test::Reply& reply) {
    const auto ack = reply.as<UpdateAck>(FederationMessage::update_ack);
    EXPECT_FALSE(ack.accepted);
    return ack.reason;
  };

  EXPECT_EQ(site(outsider).poll().type, FederationMessage::wait);
  EXPECT_NE(rejected(site(outsider).send_update(0, test::seeded_delta(global, 9), 3)).find("not sampled"),
            std::string::npos);
  EXPECT_NE(rejected(stranger.send_update(0, test::seeded_delta(global, 9), 3)).find("not registered"),
            std::string::npos);
  EXPECT_NE(rejected(good1.send_update(7, test::seeded_delta(global, 9), 3)).find("no round 7"), std::string::npos);

  const NamedTensors delta1 = test::seeded_delta(global, 11), delta2 = test::seeded_delta(global, 12);
  EXPECT_TRUE(good1.send_update(0, delta1, 4).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_NE(rejected(good1.send_update(0, test::seeded_delta(global, 13), 4)).find("duplicate"), std::string::npos);

  WireTensors with_nan = encode_tensors(test::seeded_delta(global, 14));
  with_nan["blk.0.attn_q.weight.lora_b"] = test::nan_tensor({4, 2});
  const std::string nan_reason = rejected(nan_site.send_update(0, with_nan, 4));
  EXPECT_NE(nan_reason.find("finite"), std::string::npos) << nan_reason;
  EXPECT_NE(rejected(nan_site.send_update(0, test::seeded_delta(global, 15), 4)).find("already sent an invalid"),
            std::string::npos);

  NamedTensors misshapen = test::seeded_delta(global, 16);
  misshapen["blk.0.attn_v.weight.lora_b"] = at::zeros({4, 2});   // global is [3, 2]
  const std::string shape_reason = rejected(shape_site.send_update(0, misshapen, 4));
  EXPECT_NE(shape_reason.find("shape"), std::string::npos) << shape_reason;

  EXPECT_EQ(h.service.completed_rounds(), 0u);
  EXPECT_TRUE(good2.send_update(0, delta2, 6).as<UpdateAck>(FederationMessage::update_ack).accepted);
  // Every sampled site is done (two accepted, two invalid): no need to wait for the deadline.
  ASSERT_EQ(h.service.completed_rounds(), 1u);
  test::expect_tensors_near(h.service.global().tensors, fedavg_by_hand(global, {{delta1, 4}, {delta2, 6}}), 1e-6);
  const RoundSummary summary = h.service.history().at(0);
  EXPECT_EQ(summary.reported.size(), 2u);
  EXPECT_EQ(summary.rejected.size(), 6u);   // round 7 was not open: logged only
  EXPECT_EQ(h.service.state(), RunState::in_round);
}

TEST(AggregatorService, MalformedRequestsGetAnErrorReplyNotACrash) {
  Harness h(options_for(1, 1, 1));
  ScriptedSite site(h.service, "x");
  EXPECT_NE(site.register_site("dim=8 layers=2").error_text().find("base model"), std::string::npos);
  EXPECT_EQ(site.send(net::Bytes{1, 2, 3}).type, FederationMessage::error);
  net::Bytes truncated = pack_message(FederationMessage::register_client, Register{"x", test::kTestFingerprint, 1});
  truncated.resize(truncated.size() - 3);
  EXPECT_EQ(site.send(truncated).type, FederationMessage::error);
  EXPECT_EQ(site.register_site(test::kTestFingerprint, 1).type, FederationMessage::register_reply);
  EXPECT_EQ(h.service.registered_clients(), std::vector<std::string>{"x"});
}

TEST(AggregatorService, ExtendsTheDeadlineThenFailsTheRun) {
  AggregatorOptions options = options_for(3, 2, 2);
  options.on_deadline = OnDeadline::extend;
  options.max_extensions = 2;
  Harness h(options);
  ScriptedSite a(h.service, "a"), b(h.service, "b");
  a.register_site();
  b.register_site();
  const NamedTensors global = h.service.global().tensors;
  a.take_assignment(global, 0);
  EXPECT_TRUE(a.send_update(0, test::seeded_delta(global, 1), 3).as<UpdateAck>(FederationMessage::update_ack).accepted);
  h.clock->advance(1000);
  h.service.tick();
  EXPECT_EQ(h.service.state(), RunState::in_round);
  EXPECT_EQ(h.service.history().size(), 0u);
  h.clock->advance(1000);
  h.service.tick();
  EXPECT_EQ(h.service.state(), RunState::in_round);
  h.clock->advance(1000);
  h.service.tick();
  EXPECT_EQ(h.service.state(), RunState::failed);
  EXPECT_NE(h.service.failure().find("after 2 extensions"), std::string::npos) << h.service.failure();
  const auto finished = b.poll().as<Finished>(FederationMessage::finished);
  EXPECT_TRUE(finished.failed);
  EXPECT_EQ(finished.rounds_completed, 0u);
  test::expect_tensors_equal(h.service.global().tensors, global);
}

TEST(AggregatorService, AnExtendedRoundClosesWhenTheStragglerArrives) {
  AggregatorOptions options = options_for(1, 2, 2);
  Harness h(options);
  ScriptedSite a(h.service, "a"), b(h.service, "b");
  a.register_site();
  b.register_site();
  const NamedTensors global = h.service.global().tensors;
  a.take_assignment(global, 0);
  EXPECT_TRUE(a.send_update(0, test::seeded_delta(global, 1), 3).as<UpdateAck>(FederationMessage::update_ack).accepted);
  h.clock->advance(1500);
  h.service.tick();
  EXPECT_EQ(h.service.state(), RunState::in_round);
  const auto assignment = b.poll().as<RoundAssignment>(FederationMessage::round_assignment);
  EXPECT_EQ(assignment.deadline_ms, 500) << "the extended deadline is 1000 ms after the first";
  EXPECT_TRUE(b.send_update(0, test::seeded_delta(global, 2), 3).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_EQ(h.service.state(), RunState::finished);
  EXPECT_EQ(h.service.history().at(0).extensions, 1);
}

TEST(AggregatorService, OnDeadlineFailStopsAtTheFirstDeadline) {
  AggregatorOptions options = options_for(2, 2, 2);
  options.on_deadline = OnDeadline::fail;
  Harness h(options);
  ScriptedSite a(h.service, "a"), b(h.service, "b");
  a.register_site();
  b.register_site();
  h.clock->advance(1000);
  h.service.tick();
  EXPECT_EQ(h.service.state(), RunState::failed);
}

// Sites whose deltas depend on the global they were handed, the round and
// their id, so every round (and the FedAdam moments) depends on the ones before.
void run_rounds(AggregatorService& service, std::vector<ScriptedSite>& sites, const NamedTensors& reference) {
  for (ScriptedSite& site : sites) site.register_site();
  while (!service.done()) {
    const uint32_t round = *service.open_round();
    bool any = false;
    for (ScriptedSite& site : sites) {
      const test::Reply reply = site.poll();
      if (reply.type != FederationMessage::round_assignment) continue;
      const auto assignment = reply.as<RoundAssignment>(FederationMessage::round_assignment);
      const NamedTensors global = decode_tensors(assignment.adapters, reference, "assignment");
      const uint32_t assigned = assignment.round;   // the round may have moved on within this loop
      NamedTensors delta =
          test::seeded_delta(global, std::hash<std::string>{}(site.id()) % 1000 + 31 * assigned, 0.05);
      for (auto& [name, d] : delta) d = d - global.at(name) * 0.1;
      const int64_t samples = 3 + static_cast<int64_t>(site.id().back() - '0');
      EXPECT_TRUE(site.send_update(assigned, delta, samples).as<UpdateAck>(FederationMessage::update_ack).accepted);
      any = true;
    }
    ASSERT_TRUE(any) << "round " << round << " assigned nobody";
  }
}

std::vector<ScriptedSite> make_sites(AggregatorService& service) {
  std::vector<ScriptedSite> sites;
  for (const char* id : {"site1", "site2", "site3", "site4", "site5"}) sites.emplace_back(service, id);
  return sites;
}

TEST(AggregatorService, KillAndRestartGivesBitIdenticalAdaptersWithFedAdam) {
  AggregatorOptions options = options_for(3, 3, 3);   // 3 of 5 sampled per round
  options.min_registered = 5;
  options.strategy.name = "fedadam";
  options.strategy.fedopt.eta = 0.05;
  const NamedTensors reference = test::small_global().tensors;

  options.checkpoint_dir = test::scratch_dir("agg_restart_straight");
  NamedTensors straight;
  std::vector<std::vector<std::string>> straight_samples;
  {
    Harness h(options);
    std::vector<ScriptedSite> sites = make_sites(h.service);
    run_rounds(h.service, sites, reference);
    ASSERT_EQ(h.service.state(), RunState::finished);
    straight = h.service.global().tensors;
    for (const RoundSummary& s : h.service.history()) straight_samples.push_back(s.sampled);
  }

  options.checkpoint_dir = test::scratch_dir("agg_restart_killed");
  std::vector<std::vector<std::string>> resumed_samples;
  {
    AggregatorOptions first = options;
    first.rounds = 1;
    Harness h(first);
    std::vector<ScriptedSite> sites = make_sites(h.service);
    run_rounds(h.service, sites, reference);
    ASSERT_EQ(h.service.completed_rounds(), 1u);
    resumed_samples.push_back(h.service.history().at(0).sampled);
  }   // the aggregator is gone; only its checkpoint directory remains
  {
    // Built with a different initial global: the checkpoint must win.
    Harness h(options, test::small_global(/*seed=*/99));
    EXPECT_EQ(h.service.completed_rounds(), 1u);
    EXPECT_EQ(h.service.registered_clients().size(), 5u) << "registrations are part of the checkpoint";
    std::vector<ScriptedSite> sites = make_sites(h.service);
    run_rounds(h.service, sites, reference);
    ASSERT_EQ(h.service.state(), RunState::finished);
    ASSERT_EQ(h.service.history().size(), 2u);
    for (const RoundSummary& s : h.service.history()) resumed_samples.push_back(s.sampled);
    test::expect_tensors_equal(h.service.global().tensors, straight);
  }
  EXPECT_EQ(resumed_samples, straight_samples);
  EXPECT_NE(straight_samples[0], straight_samples[1]) << "sampling should vary between rounds";

  const auto b = load_checkpoint(options.checkpoint_dir);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->completed_rounds, 3u);
  EXPECT_EQ(b->strategy_state.at("step").item<int64_t>(), 3);
}

TEST(AggregatorService, RefusesACheckpointOfAnotherStrategyOrSeed) {
  AggregatorOptions options = options_for(2, 1, 1);
  options.checkpoint_dir = test::scratch_dir("agg_checkpoint_mismatch");
  {
    Harness h(options);
    ScriptedSite a(h.service, "a");
    a.register_site();
    const NamedTensors global = h.service.global().tensors;
    a.take_assignment(global, 0);
    a.send_update(0, test::seeded_delta(global, 1), 2);
    ASSERT_EQ(h.service.completed_rounds(), 1u);
  }
  AggregatorOptions other = options;
  other.strategy.name = "fedyogi";
  EXPECT_THROW(Harness{other}, std::runtime_error);
  other = options;
  other.seed = 18;
  EXPECT_THROW(Harness{other}, std::runtime_error);
  Harness resumed(options);
  EXPECT_EQ(resumed.service.completed_rounds(), 1u);
}

// Records what it is asked ("sync 2 [a:2]", "close 0 [a:2 b:3]": each site
// with its weight) and answers like a split server in round `server_round`
// would.
class RecordingCloser : public SplitRoundCloser {
 public:
  RecordingCloser(std::vector<std::string>& calls, uint32_t server_round) : calls_(calls), round_(server_round) {}
  uint32_t close(uint32_t round, const split::RoundSites& participants) override {
    calls_.push_back("close " + std::to_string(round) + " " + list(participants));
    round_ = round + 1;
    return 7;
  }
  Synced sync(uint32_t round, const split::RoundSites& participants) override {
    calls_.push_back("sync " + std::to_string(round) + " " + list(participants));
    const Synced synced{round_, round_ + 1 == round ? 5u : 0u};
    round_ = round;
    return synced;
  }
  std::string describe() const override { return "recording"; }

 private:
  static std::string list(const split::RoundSites& sites) {
    std::string text = "[";
    for (size_t i = 0; i < sites.ids.size(); ++i) {
      text += (i > 0 ? " " : "") + sites.ids[i];
      if (!sites.weights.empty()) text += ":" + std::to_string(static_cast<int64_t>(sites.weights.at(i)));
    }
    return text + "]";
  }
  std::vector<std::string>& calls_;
  uint32_t round_;
};

TEST(AggregatorService, TellsSplitServersWhichSitesEachRoundAcceptedAndSyncsThemOnARestart) {
  AggregatorOptions options = options_for(3, 2, 1);
  options.checkpoint_dir = test::scratch_dir("agg_split_resync");
  options.round_deadline_ms = 1000;
  std::vector<std::string> calls;
  std::vector<std::string> log;
  {
    AggregatorOptions first = options;
    first.rounds = 2;
    Harness h(first);
    h.service.add_split_round_closer(std::make_unique<RecordingCloser>(calls, 0));
    ScriptedSite a(h.service, "a"), b(h.service, "b");
    a.register_site();
    b.register_site();
    // Round 0: both report. Round 1: only a does (b died mid-round); the
    // deadline closes the round with a alone.
    for (uint32_t round : {0u, 1u}) {
      const NamedTensors global = h.service.global().tensors;
      ASSERT_EQ(*h.service.open_round(), round);
      a.take_assignment(global, round);
      b.take_assignment(global, round);
      a.send_update(round, test::seeded_delta(global, round), 2);
      if (round == 0) b.send_update(round, test::seeded_delta(global, round + 10), 3);
    }
    h.clock->advance(1001);
    h.service.tick();
    EXPECT_EQ(h.service.completed_rounds(), 2u);
    EXPECT_EQ(h.service.history().at(1).split_clients_averaged, std::vector<uint32_t>{7});
  }
  EXPECT_EQ(calls, (std::vector<std::string>{"sync 0 []", "close 0 [a:2 b:3]", "close 1 [a:2]"}));

  // Restarted against a split server that missed the end of round 1 (still
  // in round 1): the sync closes it there with the sites round 1 accepted.
  calls.clear();
  Harness h(options);
  h.service.add_split_round_closer(std::make_unique<RecordingCloser>(calls, 1));
  ScriptedSite a(h.service, "a");
  a.register_site();
  const NamedTensors global = h.service.global().tensors;
  ASSERT_EQ(*h.service.open_round(), 2u);
  a.take_assignment(global, 2);
  a.send_update(2, test::seeded_delta(global, 2), 2);
  h.clock->advance(1001);
  h.service.tick();
  EXPECT_EQ(calls, (std::vector<std::string>{"sync 2 [a:2]", "close 2 [a:2]"}));
  bool told = false;
  for (const std::string& line : h.log) told = told || line.find("had not closed round 1: closed it now (5 clients") != std::string::npos;
  EXPECT_TRUE(told);
}


// Client-level DP at the service: Poisson-sampled rounds (empty ones too)
// close with whoever reported, sites are told the clipping norm, epsilon is
// reported per round and survives a restart, and the run stops at its budget.
TEST(AggregatorService, DpRoundsArePoissonSampledAccountedAndStopAtTheBudget) {
  AggregatorOptions options = options_for(40, 0, 1);
  options.fraction_per_round = 0.3;
  options.min_registered = 5;
  options.dp.enabled = true;
  options.dp.clip_norm = 0.5;
  options.dp.noise_multiplier = 2.0;
  options.dp.target_epsilon = 2.8;
  options.dp.noise_seed = 3;
  options.checkpoint_dir = test::scratch_dir("agg_dp");
  const NamedTensors reference = test::small_global().tensors;
  // Rounds a 2.8 budget allows at q 0.3, z 2.0 (10 of them: 2.71 after 10).
  int64_t allowed = 0;
  while (privacy::epsilon_after(0.3, 2.0, allowed + 1, 1e-5).epsilon <= 2.8) ++allowed;
  ASSERT_GT(allowed, 3);
  ASSERT_LT(allowed, 40);

  auto play = [&](AggregatorService& service, std::vector<ScriptedSite>& sites, int64_t max_rounds) {
    for (int64_t r = 0; r < max_rounds && !service.done(); ++r) {
      for (ScriptedSite& site : sites) {
        const test::Reply reply = site.poll();
        if (reply.type != FederationMessage::round_assignment) continue;
        const auto assignment = reply.as<RoundAssignment>(FederationMessage::round_assignment);
        EXPECT_EQ(assignment.config.clip_norm, 0.5);
        const NamedTensors global = decode_tensors(assignment.adapters, reference, "assignment");
        site.send_update(assignment.round, test::seeded_delta(global, assignment.round, 0.05), 4);
      }
      service.tick();   // a round that sampled nobody closes here
    }
  };
  std::vector<double> epsilons;
  size_t empty_rounds = 0;
  {
    Harness h(options);
    std::vector<ScriptedSite> sites = make_sites(h.service);
    for (ScriptedSite& site : sites) site.register_site();
    play(h.service, sites, 3);
    for (const RoundSummary& summary : h.service.history()) {
      ASSERT_TRUE(summary.dp_epsilon.has_value());
      epsilons.push_back(*summary.dp_epsilon);
    }
  }
  ASSERT_GE(epsilons.size(), 3u);
  // Restarted: the accountant goes on from the checkpoint, up to the budget.
  Harness h(options);
  std::vector<ScriptedSite> sites = make_sites(h.service);
  for (ScriptedSite& site : sites) site.register_site();
  play(h.service, sites, 200);
  ASSERT_EQ(h.service.state(), RunState::finished);
  EXPECT_EQ(static_cast<int64_t>(h.service.completed_rounds()), allowed);
  for (const RoundSummary& summary : h.service.history()) {
    epsilons.push_back(*summary.dp_epsilon);
    empty_rounds += summary.sampled.empty();
  }
  for (size_t i = 0; i < epsilons.size(); ++i) {
    EXPECT_NEAR(epsilons[i], privacy::epsilon_after(0.3, 2.0, static_cast<int64_t>(i) + 1, 1e-5).epsilon, 1e-9)
        << "round " << i;
  }
  EXPECT_LE(epsilons.back(), 2.8);
  bool told = false;
  for (const std::string& line : h.log) told = told || line.find("privacy budget: round") != std::string::npos;
  EXPECT_TRUE(told);
  RecordProperty("empty_rounds", static_cast<int>(empty_rounds));
}

TEST(AggregatorService, DpRefusesWhatItCannotAccountFor) {
  AggregatorOptions counted = options_for(3, 2, 1);
  counted.dp.enabled = true;
  counted.dp.clip_norm = 1;
  counted.dp.noise_multiplier = 1;
  EXPECT_THROW(counted.validate(), std::invalid_argument);   // a fixed count is not Poisson sampling
  AggregatorOptions median = options_for(3, 0, 1);
  median.dp = counted.dp;
  median.strategy.name = "median";
  try {
    median.validate();
    FAIL() << "median under DP was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("individual updates"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cleave::aggregator
