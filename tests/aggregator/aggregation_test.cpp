#include "aggregator/aggregation.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace cleave::aggregator {
namespace {

at::Tensor floats(std::vector<float> values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kFloat).reshape(shape).clone();
}

ClientUpdate update_of(std::string id, int64_t samples, NamedTensors delta) {
  ClientUpdate update;
  update.client_id = std::move(id);
  update.delta = std::move(delta);
  update.num_samples = samples;
  return update;
}

// One-tensor update, for per-coordinate tests.
ClientUpdate single(std::string id, std::vector<float> values, int64_t samples = 1) {
  const auto n = static_cast<int64_t>(values.size());
  return update_of(std::move(id), samples, {{"w", floats(std::move(values), {n})}});
}

// Results are float32: `tolerance` is relative for values above 1 in magnitude.
void expect_values(const at::Tensor& actual, std::vector<double> expected, double tolerance = 1e-6) {
  ASSERT_EQ(actual.scalar_type(), at::kFloat);
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size()));
  const at::Tensor flat = actual.reshape({-1}).to(at::kDouble);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(flat[static_cast<int64_t>(i)].item<double>(), expected[i],
                tolerance * std::max(1.0, std::abs(expected[i])))
        << "coordinate " << i;
  }
}

TEST(WeightedMean, WeighsClientsBySampleCount) {
  const std::vector<ClientUpdate> updates = {
      update_of("a", 1, {{"lora_a", floats({1, 2, 3, 4}, {2, 2})}, {"lora_b", floats({10}, {1})}}),
      update_of("b", 3, {{"lora_a", floats({5, 6, 7, 8}, {2, 2})}, {"lora_b", floats({-2}, {1})}}),
  };
  const NamedTensors mean = weighted_mean(updates);
  ASSERT_EQ(mean.size(), 2u);
  // (1*x_a + 3*x_b) / 4 per coordinate.
  EXPECT_EQ(mean.at("lora_a").sizes(), at::IntArrayRef({2, 2}));
  expect_values(mean.at("lora_a"), {4.0, 5.0, 6.0, 7.0});
  expect_values(mean.at("lora_b"), {1.0});
}

TEST(WeightedMean, ThreeClientsWithUnequalCounts) {
  const std::vector<ClientUpdate> updates = {single("a", {0.5f, 1.0f}, 1), single("b", {-1.0f, 1.0f}, 2),
                                             single("c", {2.0f, -3.0f}, 5)};
  // (0.5 - 2 + 10) / 8 = 1.0625 ; (1 + 2 - 15) / 8 = -1.5
  expect_values(weighted_mean(updates).at("w"), {1.0625, -1.5});
}

TEST(WeightedMean, DoesNotModifyItsInputs) {
  const std::vector<ClientUpdate> updates = {single("a", {1, 2}, 1), single("b", {3, 4}, 1)};
  weighted_mean(updates);
  expect_values(updates[0].delta.at("w"), {1, 2});
  expect_values(updates[1].delta.at("w"), {3, 4});
}

TEST(WeightedMean, RejectsEmptyMismatchedAndUnweighted) {
  EXPECT_THROW(weighted_mean({}), std::invalid_argument);
  EXPECT_THROW(weighted_mean({single("a", {1, 2}), single("b", {1, 2, 3})}), std::invalid_argument);
  EXPECT_THROW(weighted_mean({single("a", {1}), update_of("b", 1, {{"other", floats({1}, {1})}})}),
               std::invalid_argument);
  EXPECT_THROW(weighted_mean({single("a", {1}, 0)}), std::invalid_argument);
}

TEST(CoordinateMedian, OneHugeClientDoesNotMoveIt) {
  const std::vector<ClientUpdate> honest = {single("a", {1, -5}), single("b", {2, -4}), single("c", {3, -6}),
                                            single("d", {4, -3})};
  std::vector<ClientUpdate> attacked = honest;
  attacked.push_back(single("evil", {1e9f, 1e9f}, 1000000));
  // Odd count: the middle value per coordinate; the attacker sits at the top.
  expect_values(coordinate_median(attacked).at("w"), {3.0, -4.0});
  // Weighted mean, by contrast, is dragged all the way.
  EXPECT_GT(weighted_mean(attacked).at("w")[0].item<float>(), 1e8f);
}

TEST(CoordinateMedian, EvenCountAveragesTheMiddlePair) {
  const std::vector<ClientUpdate> updates = {single("a", {1, 10}), single("b", {2, 40}), single("c", {4, 20}),
                                             single("d", {100, 30})};
  expect_values(coordinate_median(updates).at("w"), {3.0, 25.0});
}

TEST(CoordinateMedian, SingleClientIsItself) {
  expect_values(coordinate_median({single("a", {7, -2})}).at("w"), {7.0, -2.0});
}

TEST(TrimmedMean, DropsTheExtremesOfEachCoordinate) {
  // Five clients; trim 0.2 drops floor(1.0) = 1 value at each end, per coordinate.
  const std::vector<ClientUpdate> updates = {single("a", {1, 500}), single("b", {-1000, 3}),
                                             single("c", {3, 4}), single("d", {5, -7}), single("e", {7, 5})};
  // coordinate 0 sorted: -1000 1 3 5 7 -> mean(1, 3, 5) = 3
  // coordinate 1 sorted: -7 3 4 5 500 -> mean(3, 4, 5) = 4
  expect_values(trimmed_mean(updates, 0.2).at("w"), {3.0, 4.0});
  // floor(0.1 * 5) = 0: nothing trimmed, the plain (unweighted) mean.
  expect_values(trimmed_mean(updates, 0.1).at("w"),
                {(1 - 1000 + 3 + 5 + 7) / 5.0, (500 + 3 + 4 - 7 + 5) / 5.0});
  // floor(0.4 * 5) = 2: only the middle value, the median.
  expect_values(trimmed_mean(updates, 0.4).at("w"), {3.0, 4.0});
}

TEST(TrimmedMean, RejectsFractionOutsideRange) {
  const std::vector<ClientUpdate> updates = {single("a", {1}), single("b", {2})};
  EXPECT_THROW(trimmed_mean(updates, 0.5), std::invalid_argument);
  EXPECT_THROW(trimmed_mean(updates, -0.1), std::invalid_argument);
  EXPECT_THROW(trimmed_mean(updates, std::nan("")), std::invalid_argument);
}

TEST(ClipByNorm, ScalesTheWholeDeltaToTheBound) {
  // Global norm over both tensors: sqrt(3^2 + 4^2) = 5.
  const NamedTensors delta = {{"a", floats({3, 0}, {2})}, {"b", floats({0, 4}, {1, 2})}};
  const ClippedDelta clipped = clip_by_norm(delta, 1.0);
  EXPECT_DOUBLE_EQ(clipped.norm, 5.0);
  expect_values(clipped.delta.at("a"), {0.6, 0.0});
  expect_values(clipped.delta.at("b"), {0.0, 0.8});
  EXPECT_EQ(clipped.delta.at("b").sizes(), at::IntArrayRef({1, 2}));
  EXPECT_NEAR(global_norm(clipped.delta), 1.0, 1e-6);
  // The input is untouched.
  expect_values(delta.at("a"), {3.0, 0.0});
}

TEST(ClipByNorm, LeavesShortDeltasAlone) {
  const NamedTensors delta = {{"a", floats({3, 4}, {2})}};
  const ClippedDelta clipped = clip_by_norm(delta, 10.0);
  EXPECT_DOUBLE_EQ(clipped.norm, 5.0);
  EXPECT_TRUE(at::equal(clipped.delta.at("a"), delta.at("a")));
}

TEST(ClipByNorm, RejectsBadBoundAndNonFiniteDelta) {
  const NamedTensors delta = {{"a", floats({3, 4}, {2})}};
  EXPECT_THROW(clip_by_norm(delta, 0.0), std::invalid_argument);
  EXPECT_THROW(clip_by_norm(delta, -1.0), std::invalid_argument);
  EXPECT_THROW(clip_by_norm(delta, std::numeric_limits<double>::infinity()), std::invalid_argument);
  const NamedTensors broken = {{"a", floats({std::numeric_limits<float>::infinity(), 0}, {2})}};
  EXPECT_THROW(clip_by_norm(broken, 1.0), std::invalid_argument);
}

class ValidateUpdate : public ::testing::Test {
 protected:
  NamedTensors reference = {{"blk.0.attn_q.weight.lora_a", at::zeros({2, 8})},
                            {"blk.0.attn_q.weight.lora_b", at::zeros({8, 2})}};

  ClientUpdate good() const {
    return update_of(
        "site-1", 12,
        {{"blk.0.attn_q.weight.lora_a", at::ones({2, 8})}, {"blk.0.attn_q.weight.lora_b", at::ones({8, 2})}});
  }

  // The problem found, which must mention every string in `mentions`.
  void expect_problem(const ClientUpdate& update, std::vector<std::string> mentions) const {
    const auto problem = validate_update(update, reference);
    ASSERT_TRUE(problem.has_value()) << "expected a problem mentioning " << mentions.front();
    for (const std::string& mention : mentions) {
      EXPECT_NE(problem->find(mention), std::string::npos) << *problem << "\n  should mention: " << mention;
    }
  }
};

TEST_F(ValidateUpdate, AcceptsAGoodUpdate) {
  EXPECT_EQ(validate_update(good(), reference), std::nullopt);
  ClientUpdate as_double = good();
  for (auto& [name, tensor] : as_double.delta) tensor = tensor.to(at::kDouble);
  EXPECT_EQ(validate_update(as_double, reference), std::nullopt);
}

TEST_F(ValidateUpdate, RejectsNonPositiveSampleCount) {
  ClientUpdate update = good();
  update.num_samples = 0;
  expect_problem(update, {"site-1", "0"});
  update.num_samples = -3;
  expect_problem(update, {"site-1", "-3"});
}

TEST_F(ValidateUpdate, RejectsMissingTensor) {
  ClientUpdate update = good();
  update.delta.erase("blk.0.attn_q.weight.lora_b");
  expect_problem(update, {"site-1", "missing", "blk.0.attn_q.weight.lora_b"});
}

TEST_F(ValidateUpdate, RejectsExtraTensor) {
  ClientUpdate update = good();
  update.delta["blk.1.attn_v.weight.lora_a"] = at::ones({2, 8});
  expect_problem(update, {"unexpected", "blk.1.attn_v.weight.lora_a"});
}

TEST_F(ValidateUpdate, RejectsRenamedTensor) {
  ClientUpdate update = good();
  update.delta["blk.0.attn_k.weight.lora_a"] = update.delta.at("blk.0.attn_q.weight.lora_a");
  update.delta.erase("blk.0.attn_q.weight.lora_a");
  expect_problem(update,
                 {"missing", "blk.0.attn_q.weight.lora_a", "unexpected", "blk.0.attn_k.weight.lora_a"});
}

TEST_F(ValidateUpdate, RejectsWrongShape) {
  ClientUpdate update = good();
  update.delta["blk.0.attn_q.weight.lora_a"] = at::ones({4, 8});
  expect_problem(update, {"blk.0.attn_q.weight.lora_a", "[4, 8]", "[2, 8]"});
  update.delta["blk.0.attn_q.weight.lora_a"] = at::ones({16});
  expect_problem(update, {"[16]"});
}

TEST_F(ValidateUpdate, RejectsNonFloatDtype) {
  ClientUpdate update = good();
  update.delta["blk.0.attn_q.weight.lora_b"] = at::ones({8, 2}, at::kLong);
  expect_problem(update, {"blk.0.attn_q.weight.lora_b", "Long"});
  update.delta["blk.0.attn_q.weight.lora_b"] = at::ones({8, 2}, at::kBool);
  expect_problem(update, {"blk.0.attn_q.weight.lora_b", "dtype"});
}

TEST_F(ValidateUpdate, RejectsNaNAndInf) {
  ClientUpdate update = good();
  update.delta["blk.0.attn_q.weight.lora_a"][1][3] = std::nan("");
  expect_problem(update, {"blk.0.attn_q.weight.lora_a", "NaN"});
  update = good();
  update.delta["blk.0.attn_q.weight.lora_b"][0][0] = -std::numeric_limits<float>::infinity();
  expect_problem(update, {"blk.0.attn_q.weight.lora_b", "Inf"});
}

TEST_F(ValidateUpdate, RejectsUndefinedTensor) {
  ClientUpdate update = good();
  update.delta["blk.0.attn_q.weight.lora_a"] = at::Tensor();
  expect_problem(update, {"blk.0.attn_q.weight.lora_a", "undefined"});
}

}  // namespace
}  // namespace cleave::aggregator
