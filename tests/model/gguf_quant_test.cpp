// ggml block formats: fp16/bf16 rounding against an independent reference,
// hand-built blocks with values computed from the layout definition, and
// quantize -> dequantize error bounds on seeded random data.
#include "model/gguf_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/support/ggml_blocks.h"

namespace cleave::gguf {
namespace {

using test::half_by_definition;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

std::vector<float> random_values(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  // A few outliers, as real weights have.
  for (size_t i = 0; i < n; i += 97) v[i] *= 6.0f;
  return v;
}

std::vector<uint8_t> quantized(TensorType type, const std::vector<float>& x) {
  std::vector<uint8_t> bytes(row_bytes(type, static_cast<int64_t>(x.size())));
  quantize(type, x.data(), bytes.data(), static_cast<int64_t>(x.size()));
  return bytes;
}

std::vector<float> dequantized(TensorType type, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> y(n);
  dequantize(type, bytes.data(), y.data(), static_cast<int64_t>(n));
  return y;
}

double relative_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

// ---------------------------------------------------------------- fp16 / bf16

TEST(GgufFp16, EveryHalfDecodesAsDefinedAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_float(static_cast<uint16_t>(h));
    const double want = half_by_definition(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(std::isnan(fp16_to_float(float_to_fp16(f)))) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << "half 0x" << std::hex << h;
    ASSERT_EQ(float_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(GgufFp16, RoundsToNearestEvenBetweenNeighbours) {
  // Between every pair of adjacent finite positive halves a < b: the exact
  // midpoint goes to the one with an even mantissa, anything off it to the nearer.
  for (uint16_t a = 0; a < 0x7BFF; ++a) {
    const uint16_t b = static_cast<uint16_t>(a + 1);
    const float fa = fp16_to_float(a), fb = fp16_to_float(b);
    const float mid = (fa + fb) / 2;  // exact: halves have 11 significant bits
    ASSERT_EQ(double(mid), (double(fa) + double(fb)) / 2);
    const uint16_t even = (a % 2 == 0) ? a : b;
    ASSERT_EQ(float_to_fp16(mid), even) << a;
    ASSERT_EQ(float_to_fp16(std::nextafter(mid, 0.0f)), a) << a;
    ASSERT_EQ(float_to_fp16(std::nextafter(mid, 1e9f)), b) << a;
    ASSERT_EQ(float_to_fp16(-mid), even | 0x8000) << a;
  }
}

TEST(GgufFp16, OverflowUnderflowAndSpecials) {
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(65519.99f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7C00);  // tie between max and 2^16 rounds to inf (even)
  EXPECT_EQ(float_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(float_to_fp16(-INFINITY), 0xFC00);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(float_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie to even 2
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_fp16(0.1f), 0x2E66);
  const uint16_t nan = float_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
}

TEST(GgufBf16, DecodesRoundTripsAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    ASSERT_EQ(bits_of(f), h << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bf16(f), h);
    }
  }
  // Ties: the float halfway between two bf16 values has low half 0x8000.
  EXPECT_EQ(float_to_bf16(float_of(0x3F808000u)), 0x3F80);  // 0x3F80 is even: stays
  EXPECT_EQ(float_to_bf16(float_of(0x3F818000u)), 0x3F82);  // 0x3F81 is odd: goes up
  EXPECT_EQ(float_to_bf16(float_of(0x3F808001u)), 0x3F81);
  EXPECT_EQ(float_to_bf16(float_of(0x3F807FFFu)), 0x3F80);
  EXPECT_EQ(float_to_bf16(float_of(0x7F7FFFFFu)), 0x7F80);  // rounds up to inf
  // NaN stays NaN, including a signalling NaN whose payload is only in the low bits.
  const uint16_t snan = float_to_bf16(float_of(0x7F800001u));
  EXPECT_TRUE(std::isnan(bf16_to_float(snan)));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
}

// ---------------------------------------------------------------- hand-built blocks

TEST(GgufBlocks, Q8_0FromKnownBytes) {
  std::vector<uint8_t> block(34);
  put16(block.data(), 0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(4 * j - 128));
  const auto y = dequantized(TensorType::Q8_0, block, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * (4 * j - 128)) << j;
}

TEST(GgufBlocks, Q4_0FromKnownBytes) {
  std::vector<uint8_t> blocks(2 * 18);
  put16(blocks.data(), 0x4000);       // d = 2
  put16(blocks.data() + 18, 0xB400);  // d = -0.25
  for (int j = 0; j < 16; ++j) {
    blocks[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    blocks[20 + j] = static_cast<uint8_t>(((j * 7) & 15) | (j << 4));
  }
  const auto y = dequantized(TensorType::Q4_0, blocks, 64);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * (j - 8));                       // low nibble: elements 0..15
    EXPECT_EQ(y[16 + j], 2.0f * ((15 - j) - 8));           // high nibble: elements 16..31
    EXPECT_EQ(y[32 + j], -0.25f * (((j * 7) & 15) - 8));
    EXPECT_EQ(y[48 + j], -0.25f * (j - 8));
  }
}

// Packs 8 six-bit scales and mins as the Q4_K layout defines: bytes 0..3 hold
// scales 0..3 in their low 6 bits and the top 2 bits of scales 4..7; bytes 4..7
// the same for mins; bytes 8..11 the low 4 bits of scale (low nibble) and min
// (high nibble) of sub-blocks 4..7.
void pack_q4k_scales(const int* sc, const int* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

TEST(GgufBlocks, Q4_KFromKnownBytes) {
  const int sc[8] = {1, 2, 3, 63, 17, 33, 48, 5};
  const int m[8] = {0, 7, 62, 1, 40, 21, 63, 9};
  std::mt19937 rng(7);
  int q[256];
  for (int& v : q) v = static_cast<int>(rng() % 16);
  std::vector<uint8_t> block(144);
  put16(block.data(), 0x3C00);      // d = 1
  put16(block.data() + 2, 0x3800);  // dmin = 0.5
  pack_q4k_scales(sc, m, block.data() + 4);
  // Values are in 4 groups of 64: byte i of group g holds element 64g+i in its
  // low nibble and element 64g+32+i in its high nibble.
  for (int g = 0; g < 4; ++g) {
    for (int i = 0; i < 32; ++i) {
      block[16 + 32 * g + i] = static_cast<uint8_t>(q[64 * g + i] | (q[64 * g + 32 + i] << 4));
    }
  }
  const auto y = dequantized(TensorType::Q4_K, block, 256);
  for (int k = 0; k < 256; ++k) {
    const int sub = k / 32;
    EXPECT_EQ(y[k], 1.0f * sc[sub] * q[k] - 0.5f * m[sub]) << k;
  }
}

TEST(GgufBlocks, Q6_KFromKnownBytes) {
  std::mt19937 rng(11);
  int q[256];
  for (int& v : q) v = static_cast<int>(rng() % 64);
  int scales[16];
  for (int& s : scales) s = static_cast<int>(rng() % 256) - 128;
  scales[0] = -128;
  scales[1] = 127;
  std::vector<uint8_t> block(210, 0);
  // Element k = 128h + 32r + l (half h, row r 0..3, lane l 0..31): its low 4 bits
  // are a nibble of ql[64h + l + 32*(r&1)] (low for r<2, high for r>=2), its
  // high 2 bits are bits 2r..2r+1 of qh[32h + l]; its scale is scales[k/16].
  for (int k = 0; k < 256; ++k) {
    const int h = k / 128, r = (k % 128) / 32, l = k % 32;
    uint8_t& ql = block[64 * h + l + 32 * (r & 1)];
    ql |= static_cast<uint8_t>((q[k] & 15) << (r >= 2 ? 4 : 0));
    block[128 + 32 * h + l] |= static_cast<uint8_t>((q[k] >> 4) << (2 * r));
  }
  for (int s = 0; s < 16; ++s) block[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(scales[s]));
  put16(block.data() + 208, 0x3400);  // d = 0.25
  const auto y = dequantized(TensorType::Q6_K, block, 256);
  for (int k = 0; k < 256; ++k) EXPECT_EQ(y[k], 0.25f * scales[k / 16] * (q[k] - 32)) << k;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GgufBlocks, UnsupportedTypesAndPartialBlocksThrow) {
  std::vector<uint8_t> bytes(1024);
  std::vector<float> values(256);
  const std::string unsupported =
      error_of([&] { dequantize(TensorType::IQ2_XXS, bytes.data(), values.data(), 256); });
  EXPECT_NE(unsupported.find("IQ2_XXS is not supported"), std::string::npos) << unsupported;
  EXPECT_NE(unsupported.find("Q5_0"), std::string::npos) << unsupported;  // lists what is
  EXPECT_THROW(quantize(TensorType::Q4_1, values.data(), bytes.data(), 32), std::runtime_error);
  EXPECT_THROW(quantize(TensorType::Q5_K, values.data(), bytes.data(), 256), std::runtime_error);
  EXPECT_THROW(dequantize(TensorType::Q4_K, bytes.data(), values.data(), 128), std::runtime_error);
  EXPECT_THROW(quantize(TensorType::Q8_0, values.data(), bytes.data(), 33), std::runtime_error);
  EXPECT_FALSE(is_supported(TensorType::IQ2_XXS));
  EXPECT_FALSE(is_supported(TensorType::Q8_K));
  EXPECT_TRUE(is_supported(TensorType::Q6_K));
  EXPECT_TRUE(is_supported(TensorType::Q5_K));
}

// A row that is not a whole number of blocks is refused by every new type,
// naming the type and its block size.
TEST(GgufBlocks, RowsOfPartialBlocksAreRefused) {
  std::vector<uint8_t> bytes(4096);
  std::vector<float> values(1024);
  for (TensorType type : test::ggml_buildable_types()) {
    const int64_t block = block_size(type);
    if (block == 1) continue;
    const std::string msg = error_of(
        [&] { dequantize(type, bytes.data(), values.data(), block + block / 2); });
    EXPECT_NE(msg.find(std::string(type_name(type)) + " is not a multiple of its block size " +
                       std::to_string(block)),
              std::string::npos)
        << msg;
    EXPECT_THROW(row_bytes(type, block * 3 - 16), std::runtime_error) << type_name(type);
  }
}

// ---------------------------------------------------------------- every type read

// The block shapes of ggml-common.h, as the test reads them, against the
// reader's table: a wrong size would misplace every tensor after it in a file.
TEST(GgufTypes, BlockSizesMatchGgmlCommon) {
  for (const test::GgmlBlockShape& shape : test::ggml_block_shapes()) {
    SCOPED_TRACE(static_cast<uint32_t>(shape.type));
    ASSERT_TRUE(is_known(shape.type));
    EXPECT_EQ(block_size(shape.type), shape.values) << type_name(shape.type);
    EXPECT_EQ(block_bytes(shape.type), shape.bytes) << type_name(shape.type);
  }
  EXPECT_STREQ(type_name(TensorType::IQ4_NL), "IQ4_NL");
  EXPECT_EQ(static_cast<uint32_t>(TensorType::IQ4_NL), 20u);
  EXPECT_EQ(static_cast<uint32_t>(TensorType::IQ4_XS), 23u);
  EXPECT_FALSE(is_known(static_cast<TensorType>(4)));  // retired Q4_2
}

TEST(GgufTypes, SupportedAreExactlyTheTypesDequantizeReads) {
  std::string names;
  for (TensorType type : test::ggml_buildable_types()) {
    EXPECT_TRUE(is_supported(type)) << type_name(type);
    names += std::string(names.empty() ? "" : ", ") + type_name(type);
  }
  int supported = 0;
  for (const test::GgmlBlockShape& shape : test::ggml_block_shapes()) {
    supported += is_supported(shape.type);
  }
  EXPECT_EQ(supported, static_cast<int>(test::ggml_buildable_types().size()));
  EXPECT_EQ(supported_type_names(), names);
}

// Blocks the test packed from random codes and scales against each element's
// formula. The reader computes in float in its own order, so it may differ by
// float rounding of the formula's terms; a misplaced bit of a code or scale is
// off by a whole step. Rows of several blocks, so the block stride counts too.
void expect_formula_values(TensorType type, int blocks, uint32_t seed) {
  const int64_t n = blocks * block_size(type);
  const test::GgmlBlocks packed = test::random_ggml_blocks(type, n, seed, 1.0);
  ASSERT_EQ(packed.bytes.size(), row_bytes(type, n));
  std::vector<float> y(static_cast<size_t>(n));
  dequantize(type, packed.bytes.data(), y.data(), n);
  int64_t nonzero = 0;
  for (int64_t k = 0; k < n; ++k) {
    ASSERT_NEAR(y[k], packed.values[k], 1e-6 * packed.magnitude[k])
        << type_name(type) << " element " << k << " (block " << k / block_size(type) << ")";
    nonzero += y[k] != 0.0f;
  }
  EXPECT_GT(nonzero, n / 2) << "the test's blocks should not be mostly zero";
}

TEST(GgufBlocksFormula, F32) { expect_formula_values(TensorType::F32, 64, 101); }
TEST(GgufBlocksFormula, F16) { expect_formula_values(TensorType::F16, 64, 102); }
TEST(GgufBlocksFormula, BF16) { expect_formula_values(TensorType::BF16, 64, 103); }
TEST(GgufBlocksFormula, Q4_0) { expect_formula_values(TensorType::Q4_0, 9, 104); }
TEST(GgufBlocksFormula, Q4_1) { expect_formula_values(TensorType::Q4_1, 9, 105); }
TEST(GgufBlocksFormula, Q5_0) { expect_formula_values(TensorType::Q5_0, 9, 106); }
TEST(GgufBlocksFormula, Q5_1) { expect_formula_values(TensorType::Q5_1, 9, 107); }
TEST(GgufBlocksFormula, Q8_0) { expect_formula_values(TensorType::Q8_0, 9, 108); }
TEST(GgufBlocksFormula, IQ4_NL) { expect_formula_values(TensorType::IQ4_NL, 9, 109); }
TEST(GgufBlocksFormula, Q2_K) { expect_formula_values(TensorType::Q2_K, 3, 110); }
TEST(GgufBlocksFormula, Q3_K) { expect_formula_values(TensorType::Q3_K, 3, 111); }
TEST(GgufBlocksFormula, Q4_K) { expect_formula_values(TensorType::Q4_K, 3, 112); }
TEST(GgufBlocksFormula, Q5_K) { expect_formula_values(TensorType::Q5_K, 3, 113); }
TEST(GgufBlocksFormula, Q6_K) { expect_formula_values(TensorType::Q6_K, 3, 114); }
TEST(GgufBlocksFormula, IQ4_XS) { expect_formula_values(TensorType::IQ4_XS, 3, 115); }

// A few elements worked by hand from bytes, so a reading of the layouts that
// the test's packer shared with the reader would still be caught.
TEST(GgufBlocks, Q5_0FromKnownBytes) {
  std::vector<uint8_t> block(22, 0);
  put16(block.data(), 0x3800);  // d = 0.5
  block[2] = 0x01;              // qh bit 0: element 0's fifth bit
  block[5] = 0x80;              // qh bit 31: element 31's fifth bit
  block[6] = 0x3F;              // qs[0]: element 0 low nibble 15, element 16 high nibble 3
  block[21] = 0xA0;             // qs[15]: element 15 low nibble 0, element 31 high nibble 10
  const auto y = dequantized(TensorType::Q5_0, block, 32);
  EXPECT_EQ(y[0], 0.5f * (31 - 16));
  EXPECT_EQ(y[16], 0.5f * (3 - 16));
  EXPECT_EQ(y[15], 0.5f * (0 - 16));
  EXPECT_EQ(y[31], 0.5f * (26 - 16));
  EXPECT_EQ(y[1], 0.5f * -16);
}

TEST(GgufBlocks, Q3_KFromKnownBytes) {
  std::vector<uint8_t> block(110, 0);
  put16(block.data() + 108, 0x3C00);  // d = 1
  // Scale 0 = 0x21 (33 - 32 = 1): low nibble 1 in byte 0, top bits 2 in byte 8
  // bits 0-1. Scale 9 = 0x3E (62 - 32 = 30): low nibble 14 in the high nibble
  // of byte 1, top bits 3 in byte 9 bits 4-5.
  block[96 + 0] = 0x01;
  block[96 + 8] = 0x02;
  block[96 + 1] = 0xE0;
  block[96 + 9] = 0x30;
  // Element 0 (h 0, r 0, l 0): low bits 3 in qs[0] bits 0-1, hmask[0] bit 0 set -> q = 7 - 4.
  block[32] = 0x03;
  block[0] = 0x01;
  // Element 144 = 128 + 16 (h 1, r 0, l 16, scale 9): low bits 2 in qs[48] bits
  // 0-1, hmask[16] bit 4 clear -> q = 2 - 4.
  block[32 + 48] = 0x02;
  const auto y = dequantized(TensorType::Q3_K, block, 256);
  EXPECT_EQ(y[0], 1.0f * 1 * 3);
  EXPECT_EQ(y[144], 1.0f * 30 * -2);
  EXPECT_EQ(y[1], 1.0f * 1 * -4);  // all-zero codes with a clear high bit
}

TEST(GgufBlocks, IQ4_XSFromKnownBytes) {
  std::vector<uint8_t> block(136, 0);
  put16(block.data(), 0x3400);           // d = 0.25
  put16(block.data() + 2, 0x3 << 14);    // scales_h: sub-block 7 top bits 3
  block[4 + 3] = 0x50;                   // scales_l[3] high nibble: sub-block 7 low bits 5
  block[8 + 16 * 7 + 2] = 0x9F;          // sub-block 7: element 2 level 15, element 18 level 9
  const auto y = dequantized(TensorType::IQ4_XS, block, 256);
  const float dl = 0.25f * (0x35 - 32);
  EXPECT_EQ(y[224 + 2], dl * 113);
  EXPECT_EQ(y[224 + 18], dl * 13);
  EXPECT_EQ(y[0], 0.25f * -32 * -127);  // sub-block 0: scale 0 - 32, level 0
}

// ---------------------------------------------------------------- round trips

constexpr size_t kN = 256 * 64;

TEST(GgufRoundTrip, F16AndBf16AreExactForRepresentableValues) {
  std::vector<float> x(kN);
  std::mt19937 rng(3);
  for (auto& v : x) v = fp16_to_float(static_cast<uint16_t>(rng() % 0x7C00 | (rng() % 2) << 15));
  EXPECT_EQ(dequantized(TensorType::F16, quantized(TensorType::F16, x), kN), x);
  for (auto& v : x) v = bf16_to_float(static_cast<uint16_t>(rng() % 0x7F80));
  EXPECT_EQ(dequantized(TensorType::BF16, quantized(TensorType::BF16, x), kN), x);
  const auto r = random_values(kN, 4, 1.0f);
  EXPECT_EQ(dequantized(TensorType::F32, quantized(TensorType::F32, r), kN), r);
}

// Q8_0: d = fp16(amax / 127) and q = round(x / (amax/127)), so each element is
// within half a step plus the fp16 rounding of d carried over |q| <= 127 steps:
// |x - q d| <= d (1/2 + 127 * 2^-11) (+ float rounding).
TEST(GgufRoundTrip, Q8_0WithinHalfAStepPerBlock) {
  const auto x = random_values(kN, 21, 0.02f);
  const auto bytes = quantized(TensorType::Q8_0, x);
  const auto y = dequantized(TensorType::Q8_0, bytes, kN);
  for (size_t b = 0; b < kN / 32; ++b) {
    const float d = fp16_to_float(le16(&bytes[34 * b]));
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    ASSERT_NEAR(d, amax / 127, amax / 127 * 0x1p-11);
    for (int j = 0; j < 32; ++j) {
      ASSERT_LE(std::fabs(x[32 * b + j] - y[32 * b + j]), d * (0.5f + 127 * 0x1p-11f) * 1.0001f)
          << "block " << b << " element " << j;
    }
  }
  EXPECT_LT(relative_rmse(x, y), 0.01);  // measured 0.0077
}

// Q4_0: d = fp16(-max / 8) where max is the signed value of largest magnitude,
// q = clamp(round(x / d) + 8, 0, 15). Elements with x/d <= 7.5 (checked up to 7.4, leaving room for d's fp16 rounding) are within half a
// step (+ fp16 rounding of d over up to 8 steps); the far end of the range is
// clamped at +7 steps, so every element is within one step.
TEST(GgufRoundTrip, Q4_0WithinHalfAStepExceptTheClampedEnd) {
  const auto x = random_values(kN, 22, 0.02f);
  const auto bytes = quantized(TensorType::Q4_0, x);
  const auto y = dequantized(TensorType::Q4_0, bytes, kN);
  for (size_t b = 0; b < kN / 32; ++b) {
    const float d = fp16_to_float(le16(&bytes[18 * b]));
    const float step = std::fabs(d);
    for (int j = 0; j < 32; ++j) {
      const float xi = x[32 * b + j], err = std::fabs(xi - y[32 * b + j]);
      const float slop = 8 * step * 0x1p-11f + 1e-7f;
      if (xi / d <= 7.4f) {
        ASSERT_LE(err, 0.5f * step + slop) << "block " << b << " element " << j;
      } else {
        ASSERT_LE(err, step + slop) << "block " << b << " element " << j;
      }
    }
  }
  // Overall quality on this data (Gaussian with 6x outliers): measured 0.12.
  EXPECT_LT(relative_rmse(x, y), 0.14);
}

// Q4_K: every element is requantized against the scales as stored, so with
// step s = d*sc and offset o = dmin*m of its sub-block, the reconstruction is
// the nearest grid point s*q - o with q in 0..15: within s/2 of x unless x lies
// outside the grid, where it is the nearest end.
TEST(GgufRoundTrip, Q4_KWithinHalfAStepOfItsSubBlockGrid) {
  const auto x = random_values(kN, 23, 0.02f);
  const auto bytes = quantized(TensorType::Q4_K, x);
  const auto y = dequantized(TensorType::Q4_K, bytes, kN);
  for (size_t b = 0; b < kN / 256; ++b) {
    const uint8_t* block = &bytes[144 * b];
    const float d = fp16_to_float(le16(block)), dmin = fp16_to_float(le16(block + 2));
    const uint8_t* p = block + 4;
    for (int k = 0; k < 256; ++k) {
      const int j = k / 32;
      const int sc = j < 4 ? (p[j] & 63) : ((p[j + 4] & 15) | ((p[j - 4] >> 6) << 4));
      const int m = j < 4 ? (p[j + 4] & 63) : ((p[j + 4] >> 4) | ((p[j] >> 6) << 4));
      const float step = d * sc, offset = dmin * m;
      const float xi = x[256 * b + k], yi = y[256 * b + k];
      const float tol = 1e-6f * (std::fabs(xi) + offset + 15 * step);
      if (step == 0) {
        ASSERT_NEAR(yi, -offset, tol);
        continue;
      }
      const float lo = -offset, hi = 15 * step - offset;
      const float target = std::min(std::max(xi, lo), hi);
      ASSERT_LE(std::fabs(target - yi), 0.5f * step + tol) << "block " << b << " element " << k;
    }
  }
  EXPECT_LT(relative_rmse(x, y), 0.10);  // measured 0.085: better than Q4_0's 0.12
}

// Q6_K: the same with a symmetric grid s*(q-32), q in 0..63, s = d*scale.
TEST(GgufRoundTrip, Q6_KWithinHalfAStepOfItsSubBlockGrid) {
  const auto x = random_values(kN, 24, 0.02f);
  const auto bytes = quantized(TensorType::Q6_K, x);
  const auto y = dequantized(TensorType::Q6_K, bytes, kN);
  for (size_t b = 0; b < kN / 256; ++b) {
    const uint8_t* block = &bytes[210 * b];
    const float d = fp16_to_float(le16(block + 208));
    for (int k = 0; k < 256; ++k) {
      const float step = d * static_cast<int8_t>(block[192 + k / 16]);
      const float xi = x[256 * b + k], yi = y[256 * b + k];
      const float tol = 1e-6f * (std::fabs(xi) + 32 * std::fabs(step));
      const float a = -32 * step, c = 31 * step;  // grid ends (step may be negative)
      const float target = std::min(std::max(xi, std::min(a, c)), std::max(a, c));
      ASSERT_LE(std::fabs(target - yi), 0.5f * std::fabs(step) + tol)
          << "block " << b << " element " << k;
    }
  }
  EXPECT_LT(relative_rmse(x, y), 0.03);  // measured 0.023
}

TEST(GgufRoundTrip, AllZeroBlocksStayZero) {
  const std::vector<float> zeros(512, 0.0f);
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
    EXPECT_EQ(dequantized(type, quantized(type, zeros), 512), zeros) << type_name(type);
  }
}

// Requantizing what was dequantized lands on the same values (Q8_0, Q4_0: the
// grid is reproduced exactly) or within a small fraction of a step (K quants,
// whose scale search may pick a slightly different grid).
TEST(GgufRoundTrip, RequantizingDequantizedValuesIsStable) {
  const auto x = random_values(kN, 25, 0.02f);
  for (TensorType type : {TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0}) {
    const auto once = dequantized(type, quantized(type, x), kN);
    const auto twice = dequantized(type, quantized(type, once), kN);
    EXPECT_EQ(once, twice) << type_name(type);
  }
  for (TensorType type : {TensorType::Q4_K, TensorType::Q6_K}) {
    const auto once = dequantized(type, quantized(type, x), kN);
    const auto twice = dequantized(type, quantized(type, once), kN);
    double change = 0, err = 0;
    for (size_t i = 0; i < kN; ++i) {
      change = std::max(change, double(std::fabs(once[i] - twice[i])));
      err = std::max(err, double(std::fabs(x[i] - once[i])));
    }
    EXPECT_LT(relative_rmse(once, twice), 0.25 * relative_rmse(x, once)) << type_name(type);
    EXPECT_LE(change, err) << type_name(type);
  }
}

TEST(GgufRoundTrip, Q8_0QuantizesToKnownBytes) {
  // amax = 16, so d = fp16(16/127) and q_j = round(x_j * 127 / 16) (no ties here).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  const auto bytes = quantized(TensorType::Q8_0, x);
  EXPECT_EQ(le16(bytes.data()), float_to_fp16(16.0f / 127.0f));
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(static_cast<int8_t>(bytes[2 + j]), std::lround((j - 16) * 127.0 / 16.0)) << j;
  }
}

TEST(GgufRoundTrip, Q4_0HandlesOutliersAndSignOfLargestMagnitude) {
  // The value of largest magnitude is negative: it maps exactly to q = 0 (-8 d).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.01f * (j - 10);
  x[5] = -1.0f;
  const auto bytes = quantized(TensorType::Q4_0, x);
  EXPECT_EQ(fp16_to_float(le16(bytes.data())), 0.125f);  // d = max / -8
  EXPECT_EQ(bytes[2 + 5] & 15, 0);
  EXPECT_EQ(dequantized(TensorType::Q4_0, bytes, 32)[5], -1.0f);
}

// gguf_fuzz finding: a tensor with a zero dimension reached memcpy with the
// null data of an empty buffer (undefined behaviour, reported under
// -DCLEAVE_SANITIZE_UNDEFINED=ON). Zero elements convert to nothing.
TEST(GgufDequantize, ZeroElementsTouchNoBuffer) {
  for (const TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                                TensorType::Q4_K, TensorType::Q6_K, TensorType::IQ4_XS}) {
    EXPECT_NO_THROW(dequantize(type, nullptr, nullptr, 0)) << type_name(type);
  }
}

}  // namespace
}  // namespace cleave::gguf
