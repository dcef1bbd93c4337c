#include "aggregator/strategy.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "aggregator/aggregation.h"
#include "aggregator/fedavg.h"
#include "aggregator/fedopt.h"
#include "aggregator/robust.h"
#include "lora/product_mean.h"

namespace cleave::aggregator {
namespace {

at::Tensor floats(std::vector<float> values) { return at::tensor(values, at::kFloat).clone(); }

ClientUpdate single(std::string id, std::vector<float> values, int64_t samples) {
  ClientUpdate update;
  update.client_id = std::move(id);
  update.delta = {{"w", floats(std::move(values))}};
  update.num_samples = samples;
  return update;
}

std::vector<double> values_of(const at::Tensor& tensor) {
  const at::Tensor flat = tensor.reshape({-1}).to(at::kDouble).contiguous();
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

void expect_near_all(const at::Tensor& actual, const std::vector<double>& expected, double rel = 1e-5) {
  ASSERT_EQ(actual.scalar_type(), at::kFloat);
  const std::vector<double> got = values_of(actual);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], rel * std::abs(expected[i]) + 1e-7) << "coordinate " << i;
  }
}

bool identical(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a) {
    auto it = b.find(name);
    if (it == b.end() || tensor.scalar_type() != it->second.scalar_type() || !at::equal(tensor, it->second)) {
      return false;
    }
  }
  return true;
}

StrategyOptions options_named(const std::string& name) {
  StrategyOptions options;
  options.name = name;
  return options;
}

TEST(FedAvgStrategy, AddsTheWeightedMeanDeltaToTheGlobal) {
  FedAvg fedavg;
  const NamedTensors global = {{"w", floats({1.0f, 2.0f})}};
  const std::vector<ClientUpdate> updates = {single("a", {1.0f, -1.0f}, 3), single("b", {-1.0f, 3.0f}, 1)};
  const NamedTensors next = fedavg.aggregate(1, global, updates);
  // delta = (3*[1,-1] + [-1,3]) / 4 = [0.5, 0]
  expect_near_all(next.at("w"), {1.5, 2.0});
  expect_near_all(global.at("w"), {1.0, 2.0});  // input untouched
  EXPECT_TRUE(fedavg.state().empty());
}

TEST(FedAvgStrategy, RejectsEmptyOrInvalidUpdates) {
  FedAvg fedavg;
  const NamedTensors global = {{"w", floats({1.0f, 2.0f})}};
  EXPECT_THROW(fedavg.aggregate(1, global, {}), std::invalid_argument);
  ClientUpdate broken = single("site-7", {NAN, 0.0f}, 2);
  try {
    fedavg.aggregate(4, global, {single("ok", {0.0f, 0.0f}, 1), broken});
    FAIL() << "a NaN delta was aggregated";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("site-7"), std::string::npos) << message;
    EXPECT_NE(message.find("round 4"), std::string::npos) << message;
  }
}

TEST(FedAvgStrategy, StatelessStrategiesRefuseForeignState) {
  FedAvg fedavg;
  EXPECT_NO_THROW(fedavg.load_state({}));
  EXPECT_THROW(fedavg.load_state({{"step", at::scalar_tensor(1, at::kLong)}}), std::invalid_argument);
}

TEST(ClientConfiguration, FedProxSendsMuAndOthersDoNot) {
  StrategyOptions options = options_named("fedprox");
  options.fedprox.proximal_mu = 0.25;
  options.local_steps = 7;
  const ClientConfig prox = make_strategy(options)->configure(3);
  EXPECT_DOUBLE_EQ(prox.proximal_mu, 0.25);
  EXPECT_EQ(prox.local_steps, 7);
  for (const char* name : {"fedavg", "fedadam", "median"}) {
    options.name = name;
    const ClientConfig config = make_strategy(options)->configure(3);
    EXPECT_EQ(config.proximal_mu, 0.0) << name;
    EXPECT_EQ(config.local_steps, 7) << name;
  }
}

TEST(ClientConfiguration, FedProxAggregatesLikeFedAvg) {
  const NamedTensors global = {{"w", floats({1.0f, 2.0f})}};
  const std::vector<ClientUpdate> updates = {single("a", {1.0f, -1.0f}, 3), single("b", {-1.0f, 3.0f}, 1)};
  EXPECT_TRUE(identical(FedProx(FedProxOptions{}).aggregate(1, global, updates),
                        FedAvg().aggregate(1, global, updates)));
}

// Reddi et al. 2021, Algorithm 2, for one coordinate, in double precision.
struct ReferenceServerOptimizer {
  bool yogi;
  FedOptOptions options;
  double m = 0.0;
  double v;

  ReferenceServerOptimizer(bool yogi_rule, FedOptOptions opts)
      : yogi(yogi_rule), options(opts), v(opts.tau * opts.tau) {}

  double step(double x, double d) {
    m = options.beta1 * m + (1.0 - options.beta1) * d;
    const double d2 = d * d;
    if (yogi) {
      const double sign = v - d2 > 0 ? 1.0 : (v - d2 < 0 ? -1.0 : 0.0);
      v = v - (1.0 - options.beta2) * d2 * sign;
    } else {
      v = options.beta2 * v + (1.0 - options.beta2) * d2;
    }
    return x + options.eta * m / (std::sqrt(v) + options.tau);
  }
};

// Two rounds, two clients with 1 and 3 samples; the pseudo-gradient per
// coordinate is (d_a + 3 d_b) / 4. Round 2 has tiny deltas so that for Yogi
// v - d^2 changes sign between rounds (both branches exercised).
void check_server_optimizer(const std::string& name, bool yogi) {
  StrategyOptions options = options_named(name);
  options.fedopt.eta = 0.1;
  options.fedopt.beta1 = 0.9;
  options.fedopt.beta2 = 0.99;
  options.fedopt.tau = 1e-3;
  auto strategy = make_strategy(options);
  EXPECT_EQ(strategy->name(), name);

  const std::vector<double> x0 = {0.5, -1.0, 2.0};
  const std::vector<std::vector<ClientUpdate>> rounds = {
      {single("a", {0.02f, -0.04f, 0.1f}, 1), single("b", {0.06f, 0.0f, -0.02f}, 3)},
      {single("a", {0.0004f, 0.0f, -0.0008f}, 1), single("b", {0.0f, 0.0002f, 0.0004f}, 3)},
  };

  std::vector<ReferenceServerOptimizer> reference(x0.size(), ReferenceServerOptimizer(yogi, options.fedopt));
  std::vector<double> expected = x0;
  NamedTensors global = {{"w", floats({0.5f, -1.0f, 2.0f})}};
  for (size_t r = 0; r < rounds.size(); ++r) {
    for (size_t i = 0; i < x0.size(); ++i) {
      const double d_a = rounds[r][0].delta.at("w")[static_cast<int64_t>(i)].item<float>();
      const double d_b = rounds[r][1].delta.at("w")[static_cast<int64_t>(i)].item<float>();
      expected[i] = reference[i].step(expected[i], (1.0 * d_a + 3.0 * d_b) / 4.0);
    }
    global = strategy->aggregate(static_cast<int>(r + 1), global, rounds[r]);
    SCOPED_TRACE(name + " round " + std::to_string(r + 1));
    expect_near_all(global.at("w"), expected);
    const NamedTensors state = strategy->state();
    EXPECT_EQ(state.at("step").item<int64_t>(), static_cast<int64_t>(r + 1));
    std::vector<double> m_expected, v_expected;
    for (const auto& coordinate : reference) {
      m_expected.push_back(coordinate.m);
      v_expected.push_back(coordinate.v);
    }
    expect_near_all(state.at("m/w"), m_expected);
    expect_near_all(state.at("v/w"), v_expected);
  }
}

TEST(ServerOptimizer, FedAdamMatchesHandComputedSteps) { check_server_optimizer("fedadam", false); }

TEST(ServerOptimizer, FedYogiMatchesHandComputedSteps) { check_server_optimizer("fedyogi", true); }

TEST(ServerOptimizer, FirstStepIsEtaTimesSignForLargeDeltas) {
  // With m = (1-b1) d and v = tau^2 + (1-b2) d^2 (Adam) the first step is
  // eta (1-b1) d / (sqrt(tau^2 + (1-b2) d^2) + tau): a closed form, checked exactly.
  FedOptOptions options;
  FedAdam adam(options);
  const NamedTensors global = {{"w", floats({0.0f})}};
  const NamedTensors next = adam.aggregate(1, global, {single("a", {0.5f}, 4)});
  const double d = 0.5;
  const double expected = options.eta * (1 - options.beta1) * d /
                          (std::sqrt(options.tau * options.tau + (1 - options.beta2) * d * d) + options.tau);
  expect_near_all(next.at("w"), {expected});
}

// Hsu, Qi and Brown 2019 (arXiv:1909.06335), server momentum: per coordinate
// m = momentum m + d, x = x + eta m, with d = (d_a + 3 d_b) / 4; three rounds
// computed by hand in double precision.
TEST(ServerOptimizer, FedAvgMMatchesHandComputedSteps) {
  StrategyOptions options = options_named("fedavgm");
  options.fedavgm.eta = 0.7;
  options.fedavgm.momentum = 0.5;
  auto strategy = make_strategy(options);
  EXPECT_EQ(strategy->name(), "fedavgm");
  const std::vector<std::vector<ClientUpdate>> rounds = {
      {single("a", {0.4f, -0.8f}, 1), single("b", {0.0f, 0.4f}, 3)},    // d = [0.1, 0.1]
      {single("a", {-0.4f, 0.0f}, 1), single("b", {0.0f, 0.0f}, 3)},    // d = [-0.1, 0]
      {single("a", {0.0f, 0.0f}, 1), single("b", {0.0f, 0.0f}, 3)},     // d = [0, 0]: momentum alone moves x
  };
  // m: [0.1, 0.1] -> [-0.05, 0.05] -> [-0.025, 0.025]
  // x: [1, 2] -> [1.07, 2.07] -> [1.035, 2.105] -> [1.0175, 2.1225]
  const std::vector<std::vector<double>> expected_x = {{1.07, 2.07}, {1.035, 2.105}, {1.0175, 2.1225}};
  const std::vector<std::vector<double>> expected_m = {{0.1, 0.1}, {-0.05, 0.05}, {-0.025, 0.025}};
  NamedTensors global = {{"w", floats({1.0f, 2.0f})}};
  for (size_t r = 0; r < rounds.size(); ++r) {
    SCOPED_TRACE("round " + std::to_string(r + 1));
    global = strategy->aggregate(static_cast<int>(r + 1), global, rounds[r]);
    expect_near_all(global.at("w"), expected_x[r]);
    const NamedTensors state = strategy->state();
    expect_near_all(state.at("m/w"), expected_m[r]);
    EXPECT_EQ(state.at("step").item<int64_t>(), static_cast<int64_t>(r + 1));
    EXPECT_EQ(state.size(), 2u);   // "m/w" and "step": no second moment
  }
}

// Deterministic deltas for a two-tensor adapter over several rounds.
std::vector<std::vector<ClientUpdate>> seeded_rounds(int rounds, int clients) {
  auto generator = at::detail::createCPUGenerator(20240601);
  std::vector<std::vector<ClientUpdate>> all(rounds);
  for (int r = 0; r < rounds; ++r) {
    for (int c = 0; c < clients; ++c) {
      ClientUpdate update;
      update.client_id = "site-" + std::to_string(c);
      update.num_samples = 10 + 7 * c + r;
      update.delta["blk.0.attn_q.weight.lora_a"] = at::randn({4, 16}, generator) * 0.01;  // [rank, in]
      update.delta["blk.0.attn_q.weight.lora_b"] = at::randn({16, 4}, generator) * 0.01;  // [out, rank]
      all[r].push_back(std::move(update));
    }
  }
  return all;
}

NamedTensors seeded_global() {
  auto generator = at::detail::createCPUGenerator(7);
  return {{"blk.0.attn_q.weight.lora_a", at::randn({4, 16}, generator)},
          {"blk.0.attn_q.weight.lora_b", at::zeros({16, 4})}};
}

TEST(ServerOptimizer, FedAvgMWithoutMomentumAtRateOneIsFedAvg) {
  StrategyOptions options = options_named("fedavgm");
  options.fedavgm.eta = 1.0;
  options.fedavgm.momentum = 0.0;
  auto fedavgm = make_strategy(options);
  FedAvg fedavg;
  NamedTensors a = seeded_global(), b = a;
  for (const auto& round : seeded_rounds(3, 3)) {
    a = fedavgm->aggregate(1, a, round);
    b = fedavg.aggregate(1, b, round);
    for (const auto& [name, tensor] : a) EXPECT_TRUE(at::allclose(tensor, b.at(name), 1e-6, 1e-7)) << name;
  }
}

class StateRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(StateRoundTrip, RestartedStrategyContinuesBitIdentically) {
  const auto rounds = seeded_rounds(3, 3);
  StrategyOptions options = options_named(GetParam());
  options.fedopt.eta = 0.05;
  options.robust.clip_norm = 0.05;

  auto straight = make_strategy(options);
  NamedTensors global_straight = seeded_global();
  for (int r = 0; r < 3; ++r) global_straight = straight->aggregate(r + 1, global_straight, rounds[r]);

  auto before = make_strategy(options);
  NamedTensors global_resumed = before->aggregate(1, seeded_global(), rounds[0]);
  const NamedTensors checkpoint = before->state();
  before.reset();  // the aggregator process dies
  auto after = make_strategy(options);
  after->load_state(checkpoint);
  for (int r = 1; r < 3; ++r) global_resumed = after->aggregate(r + 1, global_resumed, rounds[r]);

  EXPECT_TRUE(identical(global_straight, global_resumed));
  EXPECT_TRUE(identical(straight->state(), after->state()));
  // Sanity: the rounds did move the adapters.
  EXPECT_FALSE(identical(global_straight, seeded_global()));
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, StateRoundTrip,
                         ::testing::Values("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "median",
                                           "trimmed_mean"));

// A checkpoint written before any round holds only "step" (0): loaded into a
// fresh strategy, the first round still starts the moments.
TEST(ServerOptimizerState, AStateSavedBeforeAnyRoundLoadsAndTheFirstRoundStartsTheMoments) {
  for (const std::string name : {"fedavgm", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    const NamedTensors before_any_round = make_strategy(options_named(name))->state();
    ASSERT_EQ(before_any_round.size(), 1u);
    auto restored = make_strategy(options_named(name));
    restored->load_state(before_any_round);
    auto fresh = make_strategy(options_named(name));
    const auto rounds = seeded_rounds(1, 2);
    EXPECT_TRUE(identical(restored->aggregate(1, seeded_global(), rounds[0]),
                          fresh->aggregate(1, seeded_global(), rounds[0])));
  }
}

TEST(ServerOptimizerState, StateIsACopy) {
  FedAdam adam;
  const NamedTensors global = {{"w", floats({0.0f, 1.0f})}};
  adam.aggregate(1, global, {single("a", {0.1f, 0.2f}, 1)});
  NamedTensors state = adam.state();
  state.at("m/w").fill_(123.0f);
  EXPECT_FALSE(at::equal(adam.state().at("m/w"), state.at("m/w")));
  EXPECT_EQ(adam.step(), 1);
}

TEST(ServerOptimizerState, RejectsStateThatDoesNotFit) {
  FedAdam source;
  const NamedTensors global = {{"w", floats({0.0f, 1.0f})}};
  source.aggregate(1, global, {single("a", {0.1f, 0.2f}, 1)});
  NamedTensors state = source.state();

  FedYogi no_step;
  NamedTensors without_step = state;
  without_step.erase("step");
  EXPECT_THROW(no_step.load_state(without_step), std::invalid_argument);

  FedYogi stray;
  NamedTensors with_stray = state;
  with_stray["momentum/w"] = at::zeros({2});
  EXPECT_THROW(stray.load_state(with_stray), std::invalid_argument);

  FedYogi unpaired;
  NamedTensors without_v = state;
  without_v.erase("v/w");
  EXPECT_THROW(unpaired.load_state(without_v), std::invalid_argument);

  FedAvgM momentum_only;
  EXPECT_THROW(momentum_only.load_state(state), std::invalid_argument);   // FedAdam's "v/w" is not FedAvgM's

  // Loads, but belongs to a different adapter set: the next aggregate says so.
  FedAdam other_adapters;
  other_adapters.load_state(state);
  const NamedTensors other_global = {{"x", floats({0.0f, 1.0f})}};
  EXPECT_THROW(
      other_adapters.aggregate(2, other_global, {ClientUpdate{"a", {{"x", floats({0.1f, 0.2f})}}, 1, {}}}),
      std::invalid_argument);
}

TEST(RobustStrategy, MedianIgnoresOneHugeClient) {
  auto median = make_strategy(options_named("median"));
  const NamedTensors global = {{"w", floats({1.0f, 1.0f})}};
  const NamedTensors next = median->aggregate(
      1, global,
      {single("a", {0.1f, -0.2f}, 1), single("b", {0.2f, -0.1f}, 1), single("evil", {1e6f, 1e6f}, 100000)});
  expect_near_all(next.at("w"), {1.2, 0.9});
}

TEST(RobustStrategy, ClipsEachClientBeforeAggregating) {
  // Norms 5, 1 and 50, all along the same direction [0.6, 0.8].
  const std::vector<ClientUpdate> updates = {single("a", {3.0f, 4.0f}, 1), single("b", {0.6f, 0.8f}, 1),
                                             single("c", {30.0f, 40.0f}, 1)};
  const NamedTensors global = {{"w", floats({0.0f, 0.0f})}};
  StrategyOptions options = options_named("median");
  expect_near_all(make_strategy(options)->aggregate(1, global, updates).at("w"), {3.0, 4.0});
  options.robust.clip_norm = 1.0;  // every delta becomes [0.6, 0.8]
  expect_near_all(make_strategy(options)->aggregate(1, global, updates).at("w"), {0.6, 0.8});
  options.name = "trimmed_mean";
  options.robust.clip_norm = 2.0;  // [1.2, 1.6], [0.6, 0.8], [1.2, 1.6]
  options.robust.trim_fraction = 0.0;
  expect_near_all(make_strategy(options)->aggregate(1, global, updates).at("w"), {1.0, 4.0 / 3.0});
}

TEST(Factory, BuildsEveryNamedStrategy) {
  for (const std::string& name : strategy_names()) {
    EXPECT_EQ(make_strategy(options_named(name))->name(), name);
  }
  EXPECT_EQ(strategy_names().size(), 7u);
}

TEST(Factory, RejectsUnknownNamesListingTheValidOnes) {
  try {
    make_strategy(options_named("fedsgd"));
    FAIL() << "unknown strategy accepted";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("fedsgd"), std::string::npos) << message;
    for (const std::string& name : strategy_names()) {
      EXPECT_NE(message.find(name), std::string::npos) << message << "\n  should list " << name;
    }
  }
  EXPECT_THROW(make_strategy(options_named("FedAvg")), std::invalid_argument);
  EXPECT_THROW(make_strategy(options_named("")), std::invalid_argument);
}

void expect_rejected_naming(const StrategyOptions& options, const std::string& field) {
  try {
    make_strategy(options);
    FAIL() << "accepted a bad " << field;
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(field), std::string::npos) << error.what();
  }
}

TEST(Factory, RejectsBadOptionsNamingTheField) {
  StrategyOptions options = options_named("fedadam");
  options.fedopt.beta1 = 1.0;
  expect_rejected_naming(options, "fedopt.beta1");
  options = options_named("fedyogi");
  options.fedopt.beta2 = -0.1;
  expect_rejected_naming(options, "fedopt.beta2");
  options = options_named("fedadam");
  options.fedopt.eta = 0.0;
  expect_rejected_naming(options, "fedopt.eta");
  options = options_named("fedadam");
  options.fedopt.tau = NAN;
  expect_rejected_naming(options, "fedopt.tau");
  options = options_named("fedavgm");
  options.fedavgm.momentum = 1.0;
  expect_rejected_naming(options, "fedavgm.momentum");
  options = options_named("fedavgm");
  options.fedavgm.eta = -0.5;
  expect_rejected_naming(options, "fedavgm.eta");
  options = options_named("fedprox");
  options.fedprox.proximal_mu = -1.0;
  expect_rejected_naming(options, "fedprox.proximal_mu");
  options = options_named("trimmed_mean");
  options.robust.trim_fraction = 0.5;
  expect_rejected_naming(options, "robust.trim_fraction");
  options = options_named("median");
  options.robust.clip_norm = -2.0;
  expect_rejected_naming(options, "robust.clip_norm");
  options = options_named("fedavg");
  options.local_steps = -1;
  expect_rejected_naming(options, "local_steps");
}

TEST(Factory, DirectConstructionValidatesToo) {
  FedOptOptions bad;
  bad.beta2 = 1.5;
  EXPECT_THROW(FedAdam{bad}, std::invalid_argument);
  RobustOptions bad_robust;
  bad_robust.trim_fraction = 0.7;
  EXPECT_THROW(RobustAggregate(RobustAggregate::Rule::TrimmedMean, bad_robust), std::invalid_argument);
  FedProxOptions bad_prox;
  bad_prox.proximal_mu = 0.0;
  EXPECT_THROW(FedProx{bad_prox}, std::invalid_argument);
}

}  // namespace
}  // namespace cleave::aggregator

namespace cleave::aggregator {
namespace {

// A one-projection global LoRA "p" of rank 2 and sites' updates to it.
struct LoraFixture {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(21);
  NamedTensors global = {{"p.lora_a", at::randn({2, 6}, gen)}, {"p.lora_b", at::randn({5, 2}, gen)}};
  ClientUpdate update(const std::string& id, int64_t samples, bool train_a) {
    ClientUpdate u;
    u.client_id = id;
    u.num_samples = samples;
    u.delta = {{"p.lora_a", train_a ? at::randn({2, 6}, gen) * 0.1 : at::zeros({2, 6})},
               {"p.lora_b", at::randn({5, 2}, gen) * 0.1}};
    return u;
  }
  // sum_i n_i (B + dB_i)(A + dA_i) / sum_i n_i, densely in float64.
  at::Tensor mean_product(const std::vector<ClientUpdate>& updates) const {
    at::Tensor sum = at::zeros({5, 6}, at::kDouble);
    double n = 0;
    for (const ClientUpdate& u : updates) {
      const at::Tensor b = (global.at("p.lora_b") + u.delta.at("p.lora_b")).to(at::kDouble);
      const at::Tensor a = (global.at("p.lora_a") + u.delta.at("p.lora_a")).to(at::kDouble);
      sum += static_cast<double>(u.num_samples) * b.mm(a);
      n += static_cast<double>(u.num_samples);
    }
    return sum / n;
  }
};

at::Tensor product(const NamedTensors& adapters) {
  return adapters.at("p.lora_b").to(at::kDouble).mm(adapters.at("p.lora_a").to(at::kDouble));
}

TEST(LoraAggregation, FfaMakesFedAvgsProductTheMeanOfTheSitesProducts) {
  LoraFixture f;
  const std::vector<ClientUpdate> updates = {f.update("a", 10, false), f.update("b", 30, false),
                                             f.update("c", 20, false)};
  FedAvg fedavg(0, lora::LoraAggregation::ffa);
  const NamedTensors next = fedavg.aggregate(1, f.global, updates);
  EXPECT_LT((product(next) - f.mean_product(updates)).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(at::equal(next.at("p.lora_a"), f.global.at("p.lora_a")));
  EXPECT_FALSE(fedavg.lora_truncation_error().has_value());
}

TEST(LoraAggregation, SeparateAveragingIsNotTheMeanOfTheProductsWhenSitesTrainA) {
  // Why ffa and product exist: the baseline's error is real, not a rounding.
  LoraFixture f;
  const std::vector<ClientUpdate> updates = {f.update("a", 10, true), f.update("b", 30, true)};
  const NamedTensors next = FedAvg().aggregate(1, f.global, updates);
  EXPECT_GT((product(next) - f.mean_product(updates)).abs().max().item<double>(), 1e-4);
}

TEST(LoraAggregation, ProductMakesTheNewGlobalTheMeanOfTheProductsAndReportsTheTruncation) {
  LoraFixture f;
  // One site: its product always fits its rank.
  FedAvg fedavg(0, lora::LoraAggregation::product);
  const std::vector<ClientUpdate> one = {f.update("a", 10, true)};
  NamedTensors next = fedavg.aggregate(1, f.global, one);
  EXPECT_LT((product(next) - f.mean_product(one)).abs().max().item<double>(), 1e-5);
  ASSERT_TRUE(fedavg.lora_truncation_error().has_value());
  EXPECT_LT(*fedavg.lora_truncation_error(), 1e-6);
  // Three sites that trained A: rank up to 6 > 2, so the best rank-2 factors
  // and the error they really make.
  const std::vector<ClientUpdate> three = {f.update("a", 10, true), f.update("b", 30, true),
                                           f.update("c", 20, true)};
  next = fedavg.aggregate(2, f.global, three);
  const at::Tensor m = f.mean_product(three);
  const double true_error = (m - product(next)).norm().item<double>() / m.norm().item<double>();
  EXPECT_NEAR(*fedavg.lora_truncation_error(), true_error, 1e-5);
  EXPECT_EQ(next.at("p.lora_a").sizes(), f.global.at("p.lora_a").sizes());
  // FedProx aggregates the same way.
  FedProx fedprox(FedProxOptions{}, 0, lora::LoraAggregation::product);
  EXPECT_TRUE(identical(fedprox.aggregate(2, f.global, three), next));
}

TEST(LoraAggregation, FrozenAIsCheckedAndKept) {
  LoraFixture f;
  const ClientUpdate trained = f.update("site-9", 10, true);
  const std::optional<std::string> why = trained_frozen_a(trained);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("site-9"), std::string::npos) << *why;
  EXPECT_NE(why->find("p.lora_a"), std::string::npos) << *why;
  EXPECT_FALSE(trained_frozen_a(f.update("site-1", 10, false)).has_value());
  NamedTensors next = {{"p.lora_a", at::zeros({2, 6})}, {"p.lora_b", at::ones({5, 2})}};
  keep_frozen_a(f.global, next);
  EXPECT_TRUE(at::equal(next.at("p.lora_a"), f.global.at("p.lora_a")));
  EXPECT_TRUE(at::equal(next.at("p.lora_b"), at::ones({5, 2})));
}

TEST(LoraAggregation, ProductWithAServerOptimizerIsRefusedNamingBoth) {
  StrategyOptions options = options_named("fedadam");
  options.lora_aggregation = lora::LoraAggregation::product;
  try {
    make_strategy(options);
    FAIL() << "fedadam accepted lora.aggregation product";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lora.aggregation product"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fedadam"), std::string::npos) << e.what();
  }
  options.lora_aggregation = lora::LoraAggregation::ffa;
  EXPECT_NO_THROW(make_strategy(options));
}

}  // namespace
}  // namespace cleave::aggregator

namespace cleave::aggregator {
namespace {

// A global in product_mean's form (B = U S, A = V^T) of rank 4 on one projection "p".
NamedTensors svd_form_global() {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(31);
  const NamedTensors random = {{"p.lora_a", at::randn({4, 6}, gen)}, {"p.lora_b", at::randn({5, 4}, gen)}};
  return lora::product_mean({&random}, {1.0}, 4).adapters;
}

at::Tensor product_of(const NamedTensors& adapters) {
  return adapters.at("p.lora_b").to(at::kDouble).mm(adapters.at("p.lora_a").to(at::kDouble));
}

TEST(LoraAggregation, ALowerRankSiteKeepsTheGlobalComponentsItNeverHeld) {
  const NamedTensors global = svd_form_global();
  // A rank-2 site (same alpha / rank as the global) that learned nothing.
  ClientUpdate idle;
  idle.client_id = "small";
  idle.num_samples = 10;
  idle.lora_rank = 2;
  idle.lora_scale = 1.0;
  idle.delta = {{"p.lora_a", at::zeros({2, 6})}, {"p.lora_b", at::zeros({5, 2})}};
  FedAvg fedavg(0, lora::LoraAggregation::product);
  const NamedTensors next = fedavg.aggregate(1, global, {idle});
  EXPECT_LT((product_of(next) - product_of(global)).abs().max().item<double>(), 1e-5)
      << "components 3 and 4, which the site never held, must not be dropped";
  // With a full-rank site beside it, component j >= 2 keeps the small site's share of the weight.
  ClientUpdate full;
  full.client_id = "full";
  full.num_samples = 30;
  full.delta = {{"p.lora_a", at::zeros({4, 6})}, {"p.lora_b", at::full({5, 4}, 0.1)}};
  const NamedTensors both = fedavg.aggregate(2, global, {idle, full});
  const at::Tensor full_product =
      (global.at("p.lora_b") + full.delta.at("p.lora_b")).to(at::kDouble).mm(global.at("p.lora_a").to(at::kDouble));
  const at::Tensor expected = 0.75 * full_product + 0.25 * product_of(global);
  EXPECT_LT((product_of(both) - expected).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace cleave::aggregator
