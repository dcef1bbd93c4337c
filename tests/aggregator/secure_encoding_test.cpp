#include "aggregator/secure_encoding.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "tests/aggregator/federation_fixture.h"

namespace cleave::aggregator {
namespace {

secagg::RoundParams params(const NamedTensors& like, size_t sites) {
  secagg::RoundParams p;
  p.enabled = true;
  for (size_t i = 0; i < sites; ++i) p.sampled.push_back("site-" + std::to_string(i));
  p.metric_names = secure_metric_names();
  p.metric_scale_bits = metric_scale_bits_for(static_cast<int64_t>(sites), p.weight_cap);
  p.vector_length = secure_vector_length(like, p.metric_names.size());
  return p;
}

// The decoded weighted mean of several encoded deltas is their exact
// weighted mean within the bound of secagg/round_params.h: 2^-(scale_bits+1)
// per coordinate.
TEST(SecureEncoding, SumOfEncodedDeltasDecodesToTheWeightedMeanWithinTheFixedPointError) {
  const NamedTensors global = test::small_global().tensors;
  const secagg::RoundParams p = params(global, 3);
  const std::vector<int64_t> weights = {4, 6, 9};
  std::vector<uint64_t> sum(static_cast<size_t>(p.vector_length), 0);
  NamedTensors expected;
  for (const auto& [name, t] : global) expected[name] = at::zeros(t.sizes(), at::kDouble);
  for (size_t k = 0; k < weights.size(); ++k) {
    const NamedTensors delta = test::seeded_delta(global, 10 + k);
    const EncodedUpdate encoded = encode_update(delta, weights[k], {}, p);
    EXPECT_EQ(encoded.weight, weights[k]);
    EXPECT_EQ(encoded.clipped, 0);
    ASSERT_EQ(encoded.words.size(), sum.size());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += encoded.words[i];   // mod 2^64, as under the masks
    for (const auto& [name, d] : delta) expected[name] += d.to(at::kDouble) * double(weights[k]);
  }
  const DecodedSum decoded = decode_sum(sum, global, p);
  EXPECT_EQ(decoded.total_weight, 19);
  const double bound = std::ldexp(1.0, -(p.scale_bits + 1));
  for (const auto& [name, e] : expected) {
    const at::Tensor mean = decoded.weighted_sum.at(name) / 19.0;
    EXPECT_LE((mean - e / 19.0).abs().max().item<double>(), bound) << name;
    EXPECT_EQ(mean.sizes(), global.at(name).sizes());
  }
}

// The metrics travel in the same vector: the sum decodes to each metric's
// mean weighted like the deltas, over the sites that reported it, within
// 2^-(metric_scale_bits + 1); a metric beyond +/-2^24 is clipped, one the
// round does not name is not sent.
TEST(SecureEncoding, MetricsDecodeToTheirWeightedMeanOverTheSitesThatReportedThem) {
  const NamedTensors global = test::small_global().tensors;
  const secagg::RoundParams p = params(global, 3);
  EXPECT_EQ(p.metric_scale_bits, 16);
  const std::vector<int64_t> weights = {4, 6, 9};
  const std::vector<std::map<std::string, double>> metrics = {
      {{"train_loss", 2.25}, {"eval_perplexity", 11.5}, {"site_secret", 1.0}},
      {{"train_loss", 3.125}},
      {{"train_loss", 1.0 / 3.0}, {"eval_perplexity", 1e9}}};
  std::vector<uint64_t> sum(static_cast<size_t>(p.vector_length), 0);
  for (size_t k = 0; k < weights.size(); ++k) {
    const EncodedUpdate encoded = encode_update(test::seeded_delta(global, k), weights[k], metrics[k], p);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += encoded.words[i];
  }
  const DecodedSum decoded = decode_sum(sum, global, p);
  const double bound = std::ldexp(1.0, -(p.metric_scale_bits + 1));
  EXPECT_NEAR(decoded.metrics.at("train_loss"), (4 * 2.25 + 6 * 3.125 + 9 * (1.0 / 3.0)) / 19.0, bound);
  EXPECT_NEAR(decoded.metrics.at("eval_perplexity"), (4 * 11.5 + 9 * secagg::kMetricRange) / 13.0, bound);
  EXPECT_EQ(decoded.metrics.size(), 2u) << "only the metrics some site reported, and no unnamed one";
  // The precision falls as more sites could overflow the sum.
  EXPECT_LT(metric_scale_bits_for(1000, 65536), 16);
  EXPECT_TRUE(secagg::fits_in_sum(1000, 65536, secagg::kMetricRange, metric_scale_bits_for(1000, 65536)));
}

TEST(SecureEncoding, CoordinatesBeyondTheClipRangeAreClippedAndCounted) {
  const NamedTensors global = test::small_global().tensors;
  NamedTensors delta = test::seeded_delta(global, 1, 0.01);
  delta.begin()->second[0][0] = 100.0;
  delta.begin()->second[0][1] = -7.5;
  secagg::RoundParams p = params(global, 3);
  const EncodedUpdate encoded = encode_update(delta, 3, {}, p);
  EXPECT_EQ(encoded.clipped, 2);
  const DecodedSum decoded = decode_sum(encoded.words, global, p);
  const at::Tensor first = decoded.weighted_sum.begin()->second / 3.0;
  EXPECT_NEAR(first[0][0].item<double>(), p.clip_range, 1e-6);
  EXPECT_NEAR(first[0][1].item<double>(), -p.clip_range, 1e-6);
}

TEST(SecureEncoding, WeightsAreCappedOrUniform) {
  const NamedTensors global = test::small_global().tensors;
  const NamedTensors delta = test::seeded_delta(global, 2);
  secagg::RoundParams p = params(global, 3);
  p.weight_cap = 5;
  EXPECT_EQ(encode_update(delta, 900, {}, p).weight, 5);
  p.uniform_weights = true;
  EXPECT_EQ(encode_update(delta, 900, {}, p).weight, 1);
  p.vector_length -= 1;
  EXPECT_THROW(encode_update(delta, 900, {}, p), std::invalid_argument) << "a round expecting another length";
}

TEST(SecureEncoding, ASumWhoseMasksDidNotCancelIsRefused) {
  const NamedTensors global = test::small_global().tensors;
  const secagg::RoundParams p = params(global, 3);
  std::vector<uint64_t> sum(static_cast<size_t>(p.vector_length), 0);
  const size_t weight_word = static_cast<size_t>(secure_vector_length(global, 0)) - 1;
  sum[weight_word] = 0xdeadbeefcafef00dull;   // a masked weight
  EXPECT_THROW(decode_sum(sum, global, p), std::invalid_argument);
  sum[weight_word] = 3;
  sum.back() = 0xdeadbeefcafef00dull;         // a masked metric weight
  EXPECT_THROW(decode_sum(sum, global, p), std::invalid_argument);
  sum.pop_back();
  EXPECT_THROW(decode_sum(sum, global, p), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::aggregator
