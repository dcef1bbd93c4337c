// Heterogeneous ranks (lora.aggregation product): a site registers with its
// lora rank and alpha, is handed the global truncated to its rank in its own
// scale, and its update counts with its effective product; a rank above the
// aggregator's, or any other rank without product, is refused naming the
// site; the sites' ranks survive a restart from the checkpoint.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "aggregator/aggregator_checkpoint.h"
#include "aggregator/aggregator_service.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/shared_data.h"
#include "util/json.h"

namespace cleave::aggregator {
namespace {

using test::ScriptedSite;

// small_global(): rank 2, alpha 4, so scale 2.
constexpr double kGlobalScale = 4.0 / 2;

using Harness = test::ServiceHarness;

AggregatorOptions product_options(int64_t rounds) {
  AggregatorOptions options;
  options.rounds = rounds;
  options.clients_per_round = 2;
  options.min_clients = 2;
  options.round_deadline_ms = 1000;
  options.poll_interval_ms = 5;
  options.seed = 5;
  options.strategy.lora_aggregation = lora::LoraAggregation::product;
  return options;
}

test::Reply register_at(ScriptedSite& site, int32_t rank, double alpha, int64_t samples = 10) {
  return site.send(pack_message(FederationMessage::register_client,
                                Register{site.id(), test::kTestFingerprint, samples, 0, 0, 0, rank, alpha}));
}

// Every pair of `global` at rank `rank`: A[:rank], B[:, :rank] * ratio (by hand).
NamedTensors truncated_by_hand(const NamedTensors& global, int64_t rank, double ratio) {
  NamedTensors out;
  for (const auto& [name, tensor] : global) {
    const bool is_a = name.compare(name.size() - 7, 7, ".lora_a") == 0;
    out[name] = is_a ? tensor.slice(0, 0, rank).clone() : tensor.slice(1, 0, rank) * ratio;
  }
  return out;
}

at::Tensor product(const NamedTensors& adapters, const std::string& base) {
  return adapters.at(base + ".lora_b").to(at::kDouble).mm(adapters.at(base + ".lora_a").to(at::kDouble));
}

NamedTensors plus(const NamedTensors& a, const NamedTensors& b) {
  NamedTensors out;
  for (const auto& [name, tensor] : a) out[name] = tensor + b.at(name);
  return out;
}

TEST(AggregatorHeterogeneousRanks, RefusesARankAboveTheAggregatorsAndOtherRanksWithoutProduct) {
  {
    Harness h(product_options(1));
    ScriptedSite big(h.service, "site-big");
    const std::string refused = register_at(big, 3, 4).error_text();
    EXPECT_NE(refused.find("client site-big trains at lora.rank 3"), std::string::npos) << refused;
    EXPECT_NE(refused.find("at most the aggregator's"), std::string::npos) << refused;
    ScriptedSite small(h.service, "site-small");
    EXPECT_EQ(register_at(small, 1, 4).type, FederationMessage::register_reply);
    EXPECT_EQ(h.service.registered_clients(), std::vector<std::string>{"site-small"});
  }
  AggregatorOptions separate = product_options(1);
  separate.strategy.lora_aggregation = lora::LoraAggregation::separate;
  Harness h(separate);
  ScriptedSite small(h.service, "site-small");
  const std::string refused = register_at(small, 1, 4).error_text();
  EXPECT_NE(refused.find("client site-small"), std::string::npos) << refused;
  EXPECT_NE(refused.find("heterogeneous ranks need lora.aggregation: product"), std::string::npos) << refused;
  ScriptedSite loud(h.service, "site-loud");
  EXPECT_NE(register_at(loud, 2, 8).error_text().find("lora.alpha 8"), std::string::npos) << "another alpha";
  ScriptedSite same(h.service, "site-same");
  EXPECT_EQ(register_at(same, 2, 4).type, FederationMessage::register_reply) << "the aggregator's rank, spelled out";
  ScriptedSite old(h.service, "site-old");
  EXPECT_EQ(old.register_site().type, FederationMessage::register_reply) << "0: the aggregator's";
}

TEST(AggregatorHeterogeneousRanks, ASiteIsHandedTheGlobalAtItsRankAndCountsWithItsEffectiveProduct) {
  Harness h(product_options(1));
  const NamedTensors global = h.service.global().tensors;
  ScriptedSite full(h.service, "a"), low(h.service, "b");
  register_at(full, 0, 0, 30);
  register_at(low, 1, 4, 10);   // rank 1, alpha 4: scale 4, twice the global's
  const double low_scale = 4.0 / 1;
  bool logged = false;
  for (const std::string& line : h.log) {
    logged = logged || line.rfind("client b registered (10 samples, lora rank 1", 0) == 0;
  }
  EXPECT_TRUE(logged) << "the registration names the site's rank";

  const NamedTensors full_start = full.take_assignment(global, 0);
  test::expect_tensors_equal(full_start, global);
  const NamedTensors expected_low = truncated_by_hand(global, 1, kGlobalScale / low_scale);
  const NamedTensors low_start = low.take_assignment(expected_low, 0);
  test::expect_tensors_near(low_start, expected_low, 1e-7);

  const NamedTensors full_delta = test::seeded_delta(full_start, 1);
  const NamedTensors low_delta = test::seeded_delta(low_start, 2);
  // A delta at the global's rank does not fit the low site's rank: refused.
  const UpdateAck refused = low.send_update(0, full_delta, 10).as<UpdateAck>(FederationMessage::update_ack);
  EXPECT_FALSE(refused.accepted);
  EXPECT_NE(refused.reason.find("client b"), std::string::npos) << refused.reason;

  // Both sites report in a federation of their own.
  Harness both(product_options(1));
  ScriptedSite a(both.service, "a"), b(both.service, "b");
  register_at(a, 0, 0, 30);
  register_at(b, 1, 4, 10);
  a.take_assignment(global, 0);
  b.take_assignment(expected_low, 0);
  ASSERT_TRUE(a.send_update(0, full_delta, 30).as<UpdateAck>(FederationMessage::update_ack).accepted);
  ASSERT_TRUE(b.send_update(0, low_delta, 10).as<UpdateAck>(FederationMessage::update_ack).accepted);
  ASSERT_EQ(both.service.state(), RunState::finished);
  const NamedTensors merged = both.service.global().tensors;
  const NamedTensors a_local = plus(full_start, full_delta), b_local = plus(low_start, low_delta);
  for (const std::string base : {"blk.0.attn_q.weight", "blk.0.attn_v.weight"}) {
    ASSERT_EQ(merged.at(base + ".lora_a").size(0), 2) << "the global stays at the aggregator's rank";
    // The sample-weighted mean of the effective updates, in the global's
    // scale, plus the global's component that the rank-1 site never held
    // (column 1 of B, row 1 of A), kept with that site's share of the weight.
    const at::Tensor never_held = global.at(base + ".lora_b").to(at::kDouble).slice(1, 1, 2).mm(
        global.at(base + ".lora_a").to(at::kDouble).slice(0, 1, 2));
    const at::Tensor mean =
        (30 * kGlobalScale * product(a_local, base) + 10 * low_scale * product(b_local, base)) / 40 / kGlobalScale +
        never_held * (10.0 / 40);
    // Rank 2 + rank 1: the best rank-2 approximation, by an SVD computed here.
    auto [u, s, vh] = at::linalg_svd(mean, false);
    const at::Tensor best = u.slice(1, 0, 2).mm(at::diag(s.slice(0, 0, 2))).mm(vh.slice(0, 0, 2));
    EXPECT_LT((product(merged, base) - best).abs().max().item<double>(), 1e-4) << base;
  }
  ASSERT_TRUE(both.service.history().at(0).lora_truncation_error.has_value());
  EXPECT_GT(*both.service.history().at(0).lora_truncation_error, 0.0);
}

TEST(AggregatorHeterogeneousRanks, SiteRanksSurviveARestartAndOldCheckpointsReadAsTheGlobals) {
  AggregatorOptions options = product_options(2);
  options.checkpoint_dir = test::scratch_dir("agg_hetero_restart");
  const NamedTensors reference = test::small_global().tensors;
  {
    AggregatorOptions first = options;
    first.rounds = 1;
    Harness h(first);
    ScriptedSite a(h.service, "a"), b(h.service, "b");
    register_at(a, 0, 0, 30);
    register_at(b, 1, 4, 10);
    const NamedTensors a_start = a.take_assignment(reference, 0);
    const NamedTensors b_start = b.take_assignment(truncated_by_hand(reference, 1, 0.5), 0);
    ASSERT_TRUE(a.send_update(0, test::seeded_delta(a_start, 3), 30).as<UpdateAck>(FederationMessage::update_ack)
                    .accepted);
    ASSERT_TRUE(b.send_update(0, test::seeded_delta(b_start, 4), 10).as<UpdateAck>(FederationMessage::update_ack)
                    .accepted);
    ASSERT_EQ(h.service.completed_rounds(), 1u);
  }
  const auto saved = load_checkpoint(options.checkpoint_dir);
  ASSERT_TRUE(saved.has_value());
  ASSERT_EQ(saved->site_lora.size(), 1u) << "only the site at another rank is recorded";
  EXPECT_EQ(saved->site_lora.at("b").rank, 1);
  EXPECT_EQ(saved->site_lora.at("b").alpha, 4.0);
  {
    // The restarted aggregator hands b (which does not register again) the global at rank 1.
    Harness h(options);
    ScriptedSite a(h.service, "a"), b(h.service, "b");
    const NamedTensors global = h.service.global().tensors;
    const NamedTensors b_start = b.take_assignment(truncated_by_hand(global, 1, 0.5), 1);
    test::expect_tensors_near(b_start, truncated_by_hand(global, 1, 0.5), 1e-7);
    const NamedTensors a_start = a.take_assignment(global, 1);
    EXPECT_TRUE(a.send_update(1, test::seeded_delta(a_start, 5), 30).as<UpdateAck>(FederationMessage::update_ack)
                    .accepted);
    EXPECT_TRUE(b.send_update(1, test::seeded_delta(b_start, 6), 10).as<UpdateAck>(FederationMessage::update_ack)
                    .accepted);
    EXPECT_EQ(h.service.state(), RunState::finished);
  }
  {
    // Resuming with lora.aggregation separate cannot serve b.
    AggregatorOptions separate = options;
    separate.strategy.lora_aggregation = lora::LoraAggregation::separate;
    try {
      Harness h(separate);
      FAIL() << "a checkpoint with a site at rank 1 resumed under separate";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("site b registered at lora.rank 1"), std::string::npos) << e.what();
    }
  }
  // A state.json from before site_lora existed: every site at the global's rank.
  const std::string path = options.checkpoint_dir + "/state.json";
  const json::Value state = json::parse_file(path);
  json::Value old = json::Value::object();
  for (const auto& [key, value] : state.as_object()) {
    if (key != "site_lora") old.set(key, value);
  }
  std::ofstream(path) << old.dump(2) << "\n";
  const auto read = load_checkpoint(options.checkpoint_dir);
  ASSERT_TRUE(read.has_value());
  EXPECT_TRUE(read->site_lora.empty());
  EXPECT_EQ(read->registered.size(), 2u);
}

}  // namespace
}  // namespace cleave::aggregator
