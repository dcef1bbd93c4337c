#include "wire/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/wire/test_support.h"

namespace cleave::wire {
namespace {

constexpr WireDType kAllDTypes[] = {WireDType::F32, WireDType::F16, WireDType::BF16, WireDType::I8_ROWSCALE};

class WireTensorTest : public ::testing::Test {
 protected:
  std::vector<float> normal_values(size_t count, float stddev) { return test::normal_values(rng_, count, stddev); }

  std::mt19937 rng_{20240611};
};

uint32_t bits(float value) {
  uint32_t b = 0;
  std::memcpy(&b, &value, sizeof b);
  return b;
}

float roundtrip(float value, WireDType dtype) { return decode(encode(&value, {}, dtype)).at(0); }

void put_f32(std::vector<uint8_t>& data, size_t offset, float value) {
  const uint32_t b = bits(value);
  for (int i = 0; i < 4; ++i) data[offset + i] = static_cast<uint8_t>(b >> (8 * i));
}

using test::error_of;

TEST_F(WireTensorTest, F32RoundTripIsBitExact) {
  std::vector<float> values = normal_values(2 * 3 * 5, 10.0f);
  values[0] = -0.0f;
  values[1] = std::numeric_limits<float>::max();
  values[2] = std::numeric_limits<float>::denorm_min();
  values[3] = -std::numeric_limits<float>::min();
  const WireTensor tensor = encode(values.data(), {2, 3, 5}, WireDType::F32);
  EXPECT_EQ(tensor.dtype, WireDType::F32);
  EXPECT_EQ(tensor.shape, (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(tensor.data.size(), values.size() * 4);
  const std::vector<float> decoded = decode(tensor);
  ASSERT_EQ(decoded.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(bits(decoded[i]), bits(values[i])) << "index " << i;
}

TEST_F(WireTensorTest, F16RoundTripIsWithinHalfAnUlp) {
  std::vector<float> values = normal_values(4096, 50.0f);
  auto tiny = normal_values(512, 1e-5f);   // subnormal halves
  values.insert(values.end(), tiny.begin(), tiny.end());
  const WireTensor tensor = encode(values.data(), {static_cast<int64_t>(values.size())}, WireDType::F16);
  EXPECT_EQ(tensor.data.size(), values.size() * 2);
  const std::vector<float> decoded = decode(tensor);
  for (size_t i = 0; i < values.size(); ++i) {
    // Half an ulp: 2^-11 relative for normal halves, 2^-25 absolute below 2^-14.
    const double bound = std::max(std::fabs(values[i]) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
    ASSERT_LE(std::fabs(static_cast<double>(decoded[i]) - values[i]), bound) << "index " << i << " value " << values[i];
  }
}

TEST_F(WireTensorTest, F16RoundsTiesToEvenAndKnowsItsRange) {
  EXPECT_EQ(roundtrip(1.0f + std::ldexp(1.0f, -11), WireDType::F16), 1.0f);   // tie, down to even
  EXPECT_EQ(roundtrip(1.0f + 3 * std::ldexp(1.0f, -11), WireDType::F16), 1.0f + std::ldexp(1.0f, -9));   // tie, up to even
  EXPECT_EQ(roundtrip(65504.0f, WireDType::F16), 65504.0f);
  EXPECT_EQ(roundtrip(65519.0f, WireDType::F16), 65504.0f);
  EXPECT_EQ(roundtrip(std::ldexp(1.0f, -24), WireDType::F16), std::ldexp(1.0f, -24));   // smallest subnormal
  EXPECT_EQ(roundtrip(std::ldexp(1.0f, -25), WireDType::F16), 0.0f);                    // tie, down to even (0)
  EXPECT_EQ(roundtrip(3 * std::ldexp(1.0f, -25), WireDType::F16), std::ldexp(1.0f, -23));   // tie, up to even
  EXPECT_EQ(roundtrip(-2.5f, WireDType::F16), -2.5f);

  const float too_big = 65520.0f;   // rounds to inf in half precision
  const std::string message = error_of([&] { encode(&too_big, {1}, WireDType::F16); });
  EXPECT_NE(message.find("overflows f16"), std::string::npos) << message;
  EXPECT_NE(message.find("65520"), std::string::npos) << message;
}

TEST_F(WireTensorTest, BF16RoundTripIsWithinHalfAnUlp) {
  std::vector<float> values = normal_values(4096, 1e3f);
  const WireTensor tensor = encode(values.data(), {64, 64}, WireDType::BF16);
  EXPECT_EQ(tensor.data.size(), values.size() * 2);
  const std::vector<float> decoded = decode(tensor);
  for (size_t i = 0; i < values.size(); ++i) {
    const double bound = std::fabs(values[i]) * std::ldexp(1.0, -8);
    ASSERT_LE(std::fabs(static_cast<double>(decoded[i]) - values[i]), bound) << "index " << i;
  }
}

TEST_F(WireTensorTest, BF16RoundsTiesToEvenAndRefusesOverflow) {
  EXPECT_EQ(roundtrip(1.0f + std::ldexp(1.0f, -8), WireDType::BF16), 1.0f);
  EXPECT_EQ(roundtrip(1.0f + 3 * std::ldexp(1.0f, -8), WireDType::BF16), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(roundtrip(-0.15625f, WireDType::BF16), -0.15625f);
  const float huge = std::numeric_limits<float>::max();   // rounds up past bf16's largest finite
  EXPECT_THROW(encode(&huge, {1}, WireDType::BF16), WireError);
}

TEST_F(WireTensorTest, I8RowScaleErrorIsWithinScaleOver254PerRow) {
  const int64_t rows = 2 * 16;
  const int64_t hidden = 64;
  std::vector<float> values = normal_values(rows * hidden, 3.0f);
  for (int64_t j = 0; j < hidden; ++j) values[5 * hidden + j] = 0.0f;   // an all-zero row
  for (int64_t j = 0; j < hidden; ++j) values[6 * hidden + j] *= 1000.0f;   // a loud row

  const WireTensor tensor = encode(values.data(), {2, 16, hidden}, WireDType::I8_ROWSCALE);
  EXPECT_EQ(tensor.data.size(), static_cast<size_t>(rows * 4 + rows * hidden));
  const std::vector<float> decoded = decode(tensor);
  ASSERT_EQ(decoded.size(), values.size());

  for (int64_t r = 0; r < rows; ++r) {
    float scale = 0;
    for (int64_t j = 0; j < hidden; ++j) scale = std::max(scale, std::fabs(values[r * hidden + j]));
    // scale/254 is the quantisation bound; the 1e-6 covers the final float rounding.
    const double bound = scale / 254.0 * (1 + 1e-6);
    for (int64_t j = 0; j < hidden; ++j) {
      const int64_t i = r * hidden + j;
      ASSERT_LE(std::fabs(static_cast<double>(decoded[i]) - values[i]), bound) << "row " << r << " col " << j;
      if (std::fabs(values[i]) == scale) {
        EXPECT_EQ(decoded[i], values[i]);   // the row's max is exact
      }
    }
  }
  for (int64_t j = 0; j < hidden; ++j) EXPECT_EQ(decoded[5 * hidden + j], 0.0f);
}

TEST_F(WireTensorTest, I8RowScaleIsAtLeast3Point5TimesSmallerThanF32) {
  for (int64_t hidden : {64, 128, 288}) {
    std::vector<float> values = normal_values(8 * hidden, 1.0f);
    const size_t f32 = encode(values.data(), {8, hidden}, WireDType::F32).data.size();
    const size_t i8 = encode(values.data(), {8, hidden}, WireDType::I8_ROWSCALE).data.size();
    EXPECT_GE(static_cast<double>(f32) / i8, 3.5) << "hidden " << hidden;
  }
}

// The fast encoder rounds with a magic-number trick instead of std::nearbyint:
// it must give the same bytes as the formula in wire/tensor.h, ties included.
TEST_F(WireTensorTest, I8RowScaleQuantizesExactlyAsNearbyint) {
  const int64_t rows = 16, hidden = 96;
  std::vector<float> values = normal_values(rows * hidden, 3.0f);
  // Row 0 has scale 127 and values at halves: x / 127 * 127 mostly comes back
  // as x exactly, so these are ties that must go to even.
  values[0] = 127.0f;
  for (int64_t j = 1; j < hidden; ++j) values[j] = static_cast<float>(j % 2 ? j : -j) * 0.5f;
  const WireTensor tensor = encode(values.data(), {rows, hidden}, WireDType::I8_ROWSCALE);
  for (int64_t r = 0; r < rows; ++r) {
    float scale = 0;
    for (int64_t j = 0; j < hidden; ++j) scale = std::max(scale, std::fabs(values[r * hidden + j]));
    for (int64_t j = 0; j < hidden; ++j) {
      const double expected = std::nearbyint(static_cast<double>(values[r * hidden + j]) / scale * 127.0);
      const auto got = static_cast<int8_t>(tensor.data[rows * 4 + r * hidden + j]);
      ASSERT_EQ(got, static_cast<int8_t>(expected)) << "row " << r << " col " << j;
    }
  }
  EXPECT_EQ(static_cast<int8_t>(tensor.data[rows * 4 + 1]), 0);    // 0.5: tie to even
  EXPECT_EQ(static_cast<int8_t>(tensor.data[rows * 4 + 5]), 2);    // 2.5: tie to even
}

TEST_F(WireTensorTest, DecodeIntoWritesWhatDecodeReturns) {
  const std::vector<float> values = normal_values(6 * 40, 2.0f);
  for (WireDType dtype : kAllDTypes) {
    const WireTensor tensor = encode(values.data(), {6, 40}, dtype);
    std::vector<float> into(values.size(), std::numeric_limits<float>::quiet_NaN());
    decode_into(tensor, into.data());
    const std::vector<float> decoded = decode(tensor);
    for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(bits(into[i]), bits(decoded[i])) << to_string(dtype) << " " << i;
  }
  WireTensor short_data = encode(values.data(), {6, 40}, WireDType::F16);
  short_data.data.pop_back();
  std::vector<float> into(values.size());
  EXPECT_NE(error_of([&] { decode_into(short_data, into.data()); }).find("data bytes"), std::string::npos);
}

TEST_F(WireTensorTest, ScalarsAndEmptyTensorsRoundTripInEveryDType) {
  for (WireDType dtype : kAllDTypes) {
    const float value = -1.5f;
    const WireTensor scalar = encode(&value, {}, dtype);
    EXPECT_EQ(decode(scalar), std::vector<float>{-1.5f}) << to_string(dtype);

    for (std::vector<int64_t> shape : {std::vector<int64_t>{0, 5}, std::vector<int64_t>{3, 0}}) {
      const WireTensor empty = encode(nullptr, shape, dtype);
      EXPECT_EQ(empty.data.size(), expected_data_bytes(dtype, shape)) << to_string(dtype);
      EXPECT_TRUE(decode(empty).empty());
    }
  }
}

TEST_F(WireTensorTest, EncodeRefusesNonFiniteValuesNamingTheIndex) {
  for (WireDType dtype : kAllDTypes) {
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
      std::vector<float> values(2 * 4, 1.0f);
      values[5] = bad;
      const std::string message = error_of([&] { encode(values.data(), {2, 4}, dtype); });
      EXPECT_NE(message.find("index 5 [1,1]"), std::string::npos) << to_string(dtype) << ": " << message;
    }
  }
}

TEST_F(WireTensorTest, DecodeRefusesNonFiniteValuesNamingTheIndex) {
  std::vector<float> values(8, 0.5f);

  WireTensor f32 = encode(values.data(), {8}, WireDType::F32);
  put_f32(f32.data, 4 * 6, std::nanf(""));
  EXPECT_NE(error_of([&] { decode(f32); }).find("index 6"), std::string::npos);

  WireTensor f16 = encode(values.data(), {8}, WireDType::F16);
  f16.data[2 * 3] = 0x00;   // 0x7c00: +inf
  f16.data[2 * 3 + 1] = 0x7c;
  EXPECT_NE(error_of([&] { decode(f16); }).find("index 3"), std::string::npos);

  WireTensor bf16 = encode(values.data(), {8}, WireDType::BF16);
  bf16.data[2 * 7] = 0xc0;   // 0x7fc0: NaN
  bf16.data[2 * 7 + 1] = 0x7f;
  EXPECT_NE(error_of([&] { decode(bf16); }).find("index 7"), std::string::npos);

  WireTensor i8 = encode(values.data(), {2, 4}, WireDType::I8_ROWSCALE);
  put_f32(i8.data, 4, std::numeric_limits<float>::infinity());
  EXPECT_NE(error_of([&] { decode(i8); }).find("scale of row 1"), std::string::npos);
  put_f32(i8.data, 4, -1.0f);
  EXPECT_NE(error_of([&] { decode(i8); }).find("scale of row 1"), std::string::npos);
  put_f32(i8.data, 4, std::numeric_limits<float>::max());   // finite scale, but q=127.. stays finite
  EXPECT_NO_THROW(decode(i8));
  i8.data[8 + 6] = 0x80;   // q = -128 with a scale of FLT_MAX leaves float's range
  EXPECT_NE(error_of([&] { decode(i8); }).find("index 6 [1,2]"), std::string::npos);
}

TEST_F(WireTensorTest, DecodeRefusesLyingShapes) {
  std::vector<float> values(12, 1.0f);
  const WireTensor good = encode(values.data(), {3, 4}, WireDType::F32);

  WireTensor short_data = good;
  short_data.data.pop_back();
  std::string message = error_of([&] { decode(short_data); });
  EXPECT_NE(message.find("needs 48 data bytes, got 47"), std::string::npos) << message;

  WireTensor long_data = good;
  long_data.data.push_back(0);
  EXPECT_THROW(decode(long_data), WireError);

  WireTensor wrong_shape = good;
  wrong_shape.shape = {4, 4};
  EXPECT_THROW(decode(wrong_shape), WireError);

  WireTensor negative = good;
  negative.shape = {-3, -4};
  message = error_of([&] { decode(negative); });
  EXPECT_NE(message.find("negative dimension 0"), std::string::npos) << message;

  WireTensor overflowing = good;
  overflowing.shape = {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40};
  message = error_of([&] { decode(overflowing); });
  EXPECT_NE(message.find("more than"), std::string::npos) << message;

  WireTensor above_limit = good;
  EXPECT_THROW(decode(above_limit, /*max_elements=*/11), WireError);
  EXPECT_EQ(decode(above_limit, /*max_elements=*/12).size(), 12u);

  // Zero elements, but 2^62 rows of scales claimed.
  WireTensor many_rows;
  many_rows.dtype = WireDType::I8_ROWSCALE;
  many_rows.shape = {int64_t{1} << 62, 0};
  EXPECT_THROW(decode(many_rows), WireError);

  WireTensor unknown_dtype = good;
  unknown_dtype.dtype = static_cast<WireDType>(9);
  EXPECT_THROW(decode(unknown_dtype), WireError);
}

// Regression (split_server_fuzz): a shape within the element limit but with
// no data behind it must be refused before anything is allocated for it;
// decode() used to allocate (and zero) product(shape) floats first, here 8 GiB.
TEST_F(WireTensorTest, LyingShapeIsRefusedBeforeAllocating) {
  WireTensor lying;
  lying.dtype = WireDType::F32;
  lying.shape = {kMaxWireElements};
  lying.data.assign(16, 0);
  const std::string message = error_of([&] { checked_element_count(lying); });
  EXPECT_NE(message.find("needs 8589934592 data bytes, got 16"), std::string::npos) << message;
  EXPECT_THROW(decode(lying), WireError);

  std::vector<float> values(12, 1.0f);
  const WireTensor good = encode(values.data(), {3, 4}, WireDType::I8_ROWSCALE);
  EXPECT_EQ(checked_element_count(good), 12);
}

TEST_F(WireTensorTest, EncodeRefusesBadShapes) {
  const float value = 1.0f;
  EXPECT_THROW(encode(&value, {-1}, WireDType::F32), WireError);
  EXPECT_THROW(encode(&value, {int64_t{1} << 32}, WireDType::F16), WireError);
  EXPECT_THROW(encode(nullptr, {1}, WireDType::F32), WireError);
}

}  // namespace
}  // namespace cleave::wire
