// I4_GROUP: 4-bit codes with a bfloat16 scale per group of kI4GroupSize
// values along the last dimension (wire/tensor.h).
#include "wire/tensor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/wire/test_support.h"

namespace cleave::wire {
namespace {

class WireInt4Test : public ::testing::Test {
 protected:
  std::vector<float> normal_values(size_t count, float stddev) { return test::normal_values(rng_, count, stddev); }

  std::mt19937 rng_{20240611};
};

using test::error_of;

float bf16_at(const std::vector<uint8_t>& data, size_t group) {
  const uint32_t bits = static_cast<uint32_t>(data[2 * group] | (data[2 * group + 1] << 8)) << 16;
  float value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

void put_bf16(std::vector<uint8_t>& data, size_t group, float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  data[2 * group] = static_cast<uint8_t>(bits >> 16);
  data[2 * group + 1] = static_cast<uint8_t>(bits >> 24);
}

int code_at(const WireTensor& tensor, int64_t groups, int64_t flat) {
  const int nibble = (tensor.data[2 * groups + flat / 2] >> ((flat % 2) * 4)) & 0xf;
  return (nibble ^ 8) - 8;
}

// Checks |x - x'| <= scale / 2 per group against the scale on the wire, that
// the scale covers the group's max |x| in 7 steps, and is at most a bfloat16
// rounding above max |x| / 7. Returns the number of groups seen.
int64_t expect_within_half_a_step(const std::vector<float>& values, const std::vector<float>& decoded,
                                  const WireTensor& tensor, int64_t rows, int64_t row_length) {
  int64_t group = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t start = 0; start < row_length; start += kI4GroupSize, ++group) {
      const int64_t end = std::min(start + kI4GroupSize, row_length);
      const double scale = bf16_at(tensor.data, static_cast<size_t>(group));
      double max_abs = 0;
      for (int64_t j = start; j < end; ++j) max_abs = std::max(max_abs, std::fabs(double{values[r * row_length + j]}));
      EXPECT_GE(scale * 7, max_abs) << "group " << group;
      EXPECT_LE(scale, max_abs / 7 * (1 + std::ldexp(1.0, -7))) << "group " << group;
      for (int64_t j = start; j < end; ++j) {
        const int64_t i = r * row_length + j;
        EXPECT_LE(std::fabs(double{decoded[i]} - values[i]), scale / 2) << "row " << r << " col " << j;
      }
    }
  }
  return group;
}

TEST_F(WireInt4Test, NearestRoundingIsWithinHalfAScalePerGroup) {
  const int64_t rows = 2 * 16, hidden = 128;
  std::vector<float> values = normal_values(rows * hidden, 3.0f);
  for (int64_t j = 0; j < hidden; ++j) values[6 * hidden + j] *= 1000.0f;   // a loud row
  values[9 * hidden + 40] = 500.0f;                                        // one outlier: only its group coarsens
  const WireTensor tensor = encode(values.data(), {2, 16, hidden}, WireDType::I4_GROUP);
  EXPECT_EQ(tensor.dtype, WireDType::I4_GROUP);
  const std::vector<float> decoded = decode(tensor);
  ASSERT_EQ(decoded.size(), values.size());
  EXPECT_EQ(expect_within_half_a_step(values, decoded, tensor, rows, hidden), rows * hidden / kI4GroupSize);
  // The outlier's group (columns 32..63 of row 9) alone has the large scale.
  EXPECT_GT(bf16_at(tensor.data, 9 * 4 + 1), 70.0f);
  EXPECT_LT(bf16_at(tensor.data, 9 * 4 + 0), 10.0f);
}

TEST_F(WireInt4Test, CodesAreNearestWithTiesToEven) {
  // max 7 -> scale 1 (exact in bfloat16): x is its own ratio to the scale.
  std::vector<float> values = {7.0f, 0.5f, 1.5f, 2.5f, -2.5f, -0.5f, 3.49f, -6.51f, -7.0f, 0.0f};
  const WireTensor tensor = encode(values.data(), {1, 10}, WireDType::I4_GROUP);
  EXPECT_EQ(bf16_at(tensor.data, 0), 1.0f);
  const int expected[] = {7, 0, 2, 2, -2, 0, 3, -7, -7, 0};
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(code_at(tensor, 1, i), expected[i]) << "index " << i;
}

TEST_F(WireInt4Test, ByteSizeIsExactAndSevenTimesBelowF32) {
  for (int64_t hidden : {64, 128, 288, 4096}) {
    const std::vector<float> values = normal_values(8 * hidden, 1.0f);
    const size_t f32 = encode(values.data(), {8, hidden}, WireDType::F32).data.size();
    const WireTensor tensor = encode(values.data(), {8, hidden}, WireDType::I4_GROUP);
    const size_t expected = 8 * (hidden / 32) * 2 + 8 * hidden / 2;   // scales, then two codes a byte
    EXPECT_EQ(tensor.data.size(), expected) << "hidden " << hidden;
    EXPECT_EQ(expected_data_bytes(WireDType::I4_GROUP, {8, hidden}), expected);
    EXPECT_GE(static_cast<double>(f32) / tensor.data.size(), 7.0) << "hidden " << hidden;
    EXPECT_EQ(static_cast<double>(tensor.data.size()) / (8 * hidden), 0.5625);
  }
}

TEST_F(WireInt4Test, RemainderGroupAndOddCountRoundTrip) {
  // rows of 37 = one group of 32 and one of 5; 3 * 37 = 111 codes, odd.
  const int64_t rows = 3, row_length = 37;
  std::vector<float> values = normal_values(rows * row_length, 2.0f);
  values[1 * row_length + 35] = -40.0f;   // in the short group of row 1 only
  const WireTensor tensor = encode(values.data(), {rows, row_length}, WireDType::I4_GROUP);
  EXPECT_EQ(tensor.data.size(), static_cast<size_t>(rows * 2 * 2 + (rows * row_length + 1) / 2));
  EXPECT_EQ(tensor.data.back() >> 4, 0);   // the padding nibble
  const std::vector<float> decoded = decode(tensor);
  EXPECT_EQ(expect_within_half_a_step(values, decoded, tensor, rows, row_length), rows * 2);
  EXPECT_NEAR(decoded[1 * row_length + 35], -40.0f, 40 * std::ldexp(1.0, -7));   // 7 scales: max |x| rounded up
  EXPECT_LT(bf16_at(tensor.data, 1 * 2 + 0), 2.0f);                  // row 1's full group is untouched by it
  EXPECT_GE(bf16_at(tensor.data, 1 * 2 + 1) * 7.0f, 40.0f);

  // Shorter than a group, and a scalar.
  const std::vector<float> short_row = {0.25f, -1.0f, 0.5f};
  const std::vector<float> back = decode(encode(short_row.data(), {3}, WireDType::I4_GROUP));
  for (size_t i = 0; i < short_row.size(); ++i) EXPECT_NEAR(back[i], short_row[i], 1.0 / 14 * 1.01);
  const float scalar = -3.5f;   // scale 0.5, exact in bfloat16
  EXPECT_EQ(decode(encode(&scalar, {}, WireDType::I4_GROUP)), std::vector<float>{-3.5f});
}

TEST_F(WireInt4Test, ZerosAreExactAndEqualValuesNearlySo) {
  std::vector<float> values(2 * 64, 0.0f);
  for (int64_t j = 64; j < 96; ++j) values[j] = 3.25f;    // a group of equal values: each is the max
  for (int64_t j = 96; j < 128; ++j) values[j] = -0.1f;   // equal and negative
  const WireTensor tensor = encode(values.data(), {2, 64}, WireDType::I4_GROUP);
  EXPECT_EQ(bf16_at(tensor.data, 0), 0.0f);
  EXPECT_EQ(bf16_at(tensor.data, 1), 0.0f);
  const std::vector<float> decoded = decode(tensor);
  for (int64_t j = 0; j < 64; ++j) EXPECT_EQ(decoded[j], 0.0f) << j;
  // 7 * scale is max |x| rounded up to a bfloat16 step: equal values come
  // back within that rounding.
  for (int64_t j = 64; j < 96; ++j) EXPECT_NEAR(decoded[j], 3.25f, 3.25 * std::ldexp(1.0, -7)) << j;
  for (int64_t j = 96; j < 128; ++j) EXPECT_NEAR(decoded[j], -0.1f, 0.1 * std::ldexp(1.0, -7)) << j;
  for (int64_t j = 64; j < 128; ++j) EXPECT_EQ(std::abs(code_at(tensor, 4, j)), 7) << j;
}

TEST_F(WireInt4Test, StochasticRoundingIsUnbiasedAndReproducible) {
  const int64_t n = 64;
  std::vector<float> values = normal_values(n, 1.0f);
  values[0] = 7.0f;   // groups with scales 1 and about max/7
  const int draws = 4000;
  std::vector<double> sum(n, 0.0);
  double worst_step = 0;
  for (int d = 0; d < draws; ++d) {
    const WireTensor tensor = encode(values.data(), {n}, WireDType::I4_GROUP, Rounding{true, 1000u + d});
    const std::vector<float> decoded = decode(tensor);
    for (int64_t i = 0; i < n; ++i) {
      const double scale = bf16_at(tensor.data, static_cast<size_t>(i / kI4GroupSize));
      worst_step = std::max(worst_step, std::fabs(double{decoded[i]} - values[i]) / scale);
      sum[i] += decoded[i];
    }
  }
  EXPECT_LT(worst_step, 1.0);   // always one of the two neighbouring codes
  // Each draw's error is within one scale, so its variance is <= scale^2 / 4;
  // 5 standard errors of the mean over `draws`.
  for (int64_t i = 0; i < n; ++i) {
    const double scale = bf16_at(encode(values.data(), {n}, WireDType::I4_GROUP).data, i / kI4GroupSize);
    const double tolerance = 5 * (scale / 2) / std::sqrt(double{draws});
    EXPECT_NEAR(sum[i] / draws, values[i], tolerance) << "index " << i;
  }
  // The same seed gives the same bytes; another seed other codes.
  const WireTensor a = encode(values.data(), {n}, WireDType::I4_GROUP, Rounding{true, 7});
  EXPECT_EQ(a.data, encode(values.data(), {n}, WireDType::I4_GROUP, Rounding{true, 7}).data);
  EXPECT_NE(a.data, encode(values.data(), {n}, WireDType::I4_GROUP, Rounding{true, 8}).data);
}

TEST_F(WireInt4Test, EncodeRefusesNonFiniteValues) {
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> values(2 * 40, 1.0f);
    values[45] = bad;
    const std::string message = error_of([&] { encode(values.data(), {2, 40}, WireDType::I4_GROUP); });
    EXPECT_NE(message.find("index 45 [1,5]"), std::string::npos) << message;
  }
}

TEST_F(WireInt4Test, DecodeRefusesMalformedInput) {
  const std::vector<float> values = normal_values(2 * 40, 1.0f);   // 2 rows x 2 groups, 80 codes
  const WireTensor good = encode(values.data(), {2, 40}, WireDType::I4_GROUP);
  ASSERT_EQ(good.data.size(), 4u * 2 + 40);
  EXPECT_NO_THROW(decode(good));

  WireTensor short_data = good;
  short_data.data.pop_back();
  std::string message = error_of([&] { decode(short_data); });
  EXPECT_NE(message.find("needs 48 data bytes, got 47"), std::string::npos) << message;

  // One scale too few or too many (the codes unchanged) is a wrong size too.
  WireTensor missing_scale = good;
  missing_scale.data.erase(missing_scale.data.begin(), missing_scale.data.begin() + 2);
  EXPECT_THROW(decode(missing_scale), WireError);
  WireTensor extra_scale = good;
  extra_scale.data.insert(extra_scale.data.begin(), {0, 0});
  EXPECT_THROW(decode(extra_scale), WireError);
  // The same bytes under a shape with another number of groups per row.
  WireTensor regrouped = good;
  regrouped.shape = {1, 80};   // 3 groups, 80 codes: 46 bytes
  EXPECT_THROW(decode(regrouped), WireError);

  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -1.0f}) {
    WireTensor bad_scale = good;
    put_bf16(bad_scale.data, 3, bad);
    message = error_of([&] { decode(bad_scale); });
    EXPECT_NE(message.find("scale of group 3 (row 1, from column 32)"), std::string::npos) << message;
  }

  // A finite scale whose -8 code leaves float's range.
  WireTensor overflowing = good;
  put_bf16(overflowing.data, 0, std::numeric_limits<float>::max());
  overflowing.data[8] = 0x08;   // element 0: code -8
  message = error_of([&] { decode(overflowing); });
  EXPECT_NE(message.find("index 0 [0,0]"), std::string::npos) << message;

  // An odd count: the padding nibble must be 0.
  const WireTensor odd = encode(values.data(), {3, 3}, WireDType::I4_GROUP);
  EXPECT_NO_THROW(decode(odd));
  WireTensor odd_padding = odd;
  odd_padding.data.back() |= 0x10;
  message = error_of([&] { decode(odd_padding); });
  EXPECT_NE(message.find("padding nibble"), std::string::npos) << message;

  // Zero elements, but 2^62 rows claimed: no scales, no codes, no allocation.
  WireTensor many_rows;
  many_rows.dtype = WireDType::I4_GROUP;
  many_rows.shape = {int64_t{1} << 62, 0};
  EXPECT_THROW(decode(many_rows), WireError);
  WireTensor empty_rows;
  empty_rows.dtype = WireDType::I4_GROUP;
  empty_rows.shape = {1000, 0};
  EXPECT_TRUE(decode(empty_rows).empty());
}

}  // namespace
}  // namespace cleave::wire
