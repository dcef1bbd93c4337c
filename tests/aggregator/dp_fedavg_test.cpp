// DP-FedAvg's arithmetic (aggregator/dp_fedavg.h): the fixed-denominator
// mean of clipped deltas, the noise's scale, seeding, calibration and the
// accountant it keeps.
#include "aggregator/dp_fedavg.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "aggregator/aggregation.h"
#include "privacy/rdp_accountant.h"

namespace cleave::aggregator {
namespace {

DpOptions options_with(double clip, double z, uint64_t seed = 7) {
  DpOptions options;
  options.enabled = true;
  options.clip_norm = clip;
  options.noise_multiplier = z;
  options.noise_seed = seed;
  return options;
}

ClientUpdate update_of(const std::string& id, at::Tensor a, at::Tensor b, int64_t samples) {
  return ClientUpdate{id, {{"a", a}, {"b", b}}, samples, {}};
}

TEST(DpFedAvg, TheMeanIsTheSumOfClippedDeltasOverTheExpectedSites) {
  const NamedTensors global = {{"a", at::zeros({2})}, {"b", at::zeros({2})}};
  // Norm 10 (clipped to 1) and norm 0.5 (kept); weights do not count under DP.
  const ClientUpdate big = update_of("s1", at::tensor({6.f, 0.f}), at::tensor({0.f, 8.f}), 1000);
  const ClientUpdate small = update_of("s2", at::tensor({0.3f, 0.f}), at::tensor({0.f, 0.4f}), 1);
  DpFedAvg dp(options_with(1.0, 1e-9), 0.1, 10);
  const ClientUpdate mean = dp.noisy_mean({big, small}, global, 40);   // expected sites 0.1 x 40 = 4
  EXPECT_NEAR(mean.delta.at("a")[0].item<double>(), (0.6 + 0.3) / 4, 1e-6);
  EXPECT_NEAR(mean.delta.at("b")[1].item<double>(), (0.8 + 0.4) / 4, 1e-6);
  EXPECT_NEAR(mean.delta.at("a")[1].item<double>(), 0, 1e-6);
  EXPECT_EQ(mean.delta.at("a").scalar_type(), at::kFloat);
}

TEST(DpFedAvg, TheNoiseHasStandardDeviationZTimesCOverTheExpectedSites) {
  const NamedTensors global = {{"a", at::zeros({200000})}};
  DpFedAvg dp(options_with(0.5, 2.0), 0.25, 10);
  const ClientUpdate noise_only = dp.noisy_mean({}, global, 8);   // expected sites 2
  const double stddev = noise_only.delta.at("a").std().item<double>();
  EXPECT_NEAR(stddev, 2.0 * 0.5 / 2, 0.01);
  EXPECT_NEAR(noise_only.delta.at("a").mean().item<double>(), 0, 0.01);
}

TEST(DpFedAvg, NoiseFollowsItsSeedAndTheOsSeedDiffers) {
  const NamedTensors global = {{"a", at::zeros({64})}};
  DpFedAvg one(options_with(1, 1, 99), 0.5, 10), two(options_with(1, 1, 99), 0.5, 10);
  EXPECT_TRUE(at::equal(one.noisy_mean({}, global, 4).delta.at("a"), two.noisy_mean({}, global, 4).delta.at("a")));
  DpFedAvg os_a(options_with(1, 1, 0), 0.5, 10), os_b(options_with(1, 1, 0), 0.5, 10);
  EXPECT_FALSE(at::equal(os_a.noisy_mean({}, global, 4).delta.at("a"), os_b.noisy_mean({}, global, 4).delta.at("a")));
}

TEST(DpFedAvg, AccountsEachRoundAndCalibratesToATargetEpsilon) {
  DpFedAvg dp(options_with(1, 1.1), 0.05, 100);
  EXPECT_EQ(dp.epsilon(), 0);
  const double next = dp.epsilon_after_next_round();
  for (int r = 0; r < 30; ++r) dp.account_round();
  EXPECT_NEAR(dp.epsilon(), privacy::epsilon_after(0.05, 1.1, 30, 1e-5).epsilon, 1e-9);
  EXPECT_GT(dp.epsilon(), next);

  DpOptions budget = options_with(1, 0);
  budget.target_epsilon = 2.0;
  DpFedAvg calibrated(budget, 0.05, 100);
  EXPECT_LE(privacy::epsilon_after(0.05, calibrated.noise_multiplier(), 100, 1e-5).epsilon, 2.0);
  EXPECT_GT(privacy::epsilon_after(0.05, calibrated.noise_multiplier() * 0.99, 100, 1e-5).epsilon, 2.0);

  DpFedAvg restored(options_with(1, 1.1), 0.05, 100);
  restored.restore(dp.rdp(), dp.rounds_accounted());
  EXPECT_EQ(restored.epsilon(), dp.epsilon());
  EXPECT_THROW(restored.restore({1.0, 2.0}, 2), std::runtime_error);
}

TEST(DpFedAvg, OptionsNameTheirField) {
  DpOptions bad = options_with(0, 1);
  try {
    bad.validate();
    FAIL() << "clip_norm 0 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dp.clip_norm"), std::string::npos) << e.what();
  }
  DpOptions no_noise = options_with(1, 0);
  EXPECT_THROW(no_noise.validate(), std::invalid_argument);
  DpOptions off;   // disabled: nothing to check
  EXPECT_NO_THROW(off.validate());
  EXPECT_THROW(DpFedAvg(options_with(1, 1), 0, 10), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::aggregator
