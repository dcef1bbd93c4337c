#include "aggregator/secure_encoding.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/aggregator/federation_fixture.h"

namespace cleave::aggregator {
namespace {

secagg::RoundParams params(size_t sites) {
  secagg::RoundParams p;
  p.enabled = true;
  for (size_t i = 0; i < sites; ++i) p.sampled.push_back("site-" + std::to_string(i));
  return p;
}

// The decoded weighted mean of several encoded deltas is their exact
// weighted mean within the bound of secagg/round_params.h: 2^-(scale_bits+1)
// per coordinate.
TEST(SecureEncoding, SumOfEncodedDeltasDecodesToTheWeightedMeanWithinTheFixedPointError) {
  const NamedTensors global = test::small_global().tensors;
  const secagg::RoundParams p = params(3);
  const std::vector<int64_t> weights = {4, 6, 9};
  std::vector<uint64_t> sum(static_cast<size_t>(secure_vector_length(global)), 0);
  NamedTensors expected;
  for (const auto& [name, t] : global) expected[name] = at::zeros(t.sizes(), at::kDouble);
  for (size_t k = 0; k < weights.size(); ++k) {
    const NamedTensors delta = test::seeded_delta(global, 10 + k);
    const EncodedUpdate encoded = encode_update(delta, weights[k], p);
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

TEST(SecureEncoding, CoordinatesBeyondTheClipRangeAreClippedAndCounted) {
  const NamedTensors global = test::small_global().tensors;
  NamedTensors delta = test::seeded_delta(global, 1, 0.01);
  delta.begin()->second[0][0] = 100.0;
  delta.begin()->second[0][1] = -7.5;
  secagg::RoundParams p = params(3);
  const EncodedUpdate encoded = encode_update(delta, 3, p);
  EXPECT_EQ(encoded.clipped, 2);
  const DecodedSum decoded = decode_sum(encoded.words, global, p);
  const at::Tensor first = decoded.weighted_sum.begin()->second / 3.0;
  EXPECT_NEAR(first[0][0].item<double>(), p.clip_range, 1e-6);
  EXPECT_NEAR(first[0][1].item<double>(), -p.clip_range, 1e-6);
}

TEST(SecureEncoding, WeightsAreCappedOrUniform) {
  const NamedTensors global = test::small_global().tensors;
  const NamedTensors delta = test::seeded_delta(global, 2);
  secagg::RoundParams p = params(3);
  p.weight_cap = 5;
  EXPECT_EQ(encode_update(delta, 900, p).weight, 5);
  p.uniform_weights = true;
  EXPECT_EQ(encode_update(delta, 900, p).weight, 1);
}

TEST(SecureEncoding, ASumWhoseMasksDidNotCancelIsRefused) {
  const NamedTensors global = test::small_global().tensors;
  const secagg::RoundParams p = params(3);
  std::vector<uint64_t> sum(static_cast<size_t>(secure_vector_length(global)), 0);
  sum.back() = 0xdeadbeefcafef00dull;   // a masked weight
  EXPECT_THROW(decode_sum(sum, global, p), std::invalid_argument);
  sum.pop_back();
  EXPECT_THROW(decode_sum(sum, global, p), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::aggregator
