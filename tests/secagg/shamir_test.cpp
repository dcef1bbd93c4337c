#include "secagg/shamir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

namespace cleave::secagg {
namespace {

constexpr uint64_t kP = kShamirPrime;

Key32 pattern_secret(uint8_t start) {
  Key32 secret;
  for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(start + 37 * i);
  return secret;
}

std::vector<uint32_t> points_1_to(uint32_t n) {
  std::vector<uint32_t> points(n);
  std::iota(points.begin(), points.end(), 1u);
  return points;
}

// Chunk values of the secret whose bytes are 0 except byte 0 = 100,
// byte 7 = 200 and byte 28 = 42: chunks (100, 200, 0, 0, 42).
Key32 chunked_secret() {
  Key32 secret{};
  secret[0] = 100;
  secret[7] = 200;
  secret[28] = 42;
  return secret;
}

TEST(Shamir, AnyThresholdSubsetReconstructs) {
  std::mt19937 rng(1234);  // which subsets; the shares' randomness is RAND_bytes
  const Key32 secret = pattern_secret(3);
  const size_t n = 10, t = 4;
  const std::vector<Share> shares = shamir_split(secret, t, points_1_to(n));
  ASSERT_EQ(shares.size(), n);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<Share> subset = shares;
    std::shuffle(subset.begin(), subset.end(), rng);
    subset.resize(t + trial % 3);  // extra shares beyond t are ignored
    EXPECT_EQ(shamir_combine(subset, t), secret) << "trial " << trial;
  }
}

TEST(Shamir, ThresholdOneAndThresholdN) {
  const Key32 secret = pattern_secret(200);
  const auto one = shamir_split(secret, 1, {5, 9, 77});
  for (const Share& share : one) EXPECT_EQ(shamir_combine({share}, 1), secret);

  const auto all = shamir_split(secret, 7, points_1_to(7));
  EXPECT_EQ(shamir_combine(all, 7), secret);
  std::vector<Share> reversed(all.rbegin(), all.rend());
  EXPECT_EQ(shamir_combine(reversed, 7), secret);
}

TEST(Shamir, ExtremeSecretsRoundTrip) {
  Key32 zeros{}, ones;
  ones.fill(0xff);
  for (const Key32& secret : {zeros, ones}) {
    EXPECT_EQ(shamir_combine(shamir_split(secret, 3, {1, 2, 3, 4000000000u}), 3), secret);
  }
}

TEST(Shamir, FewerThanThresholdSharesDoNotGiveTheSecret) {
  const Key32 secret = pattern_secret(9);
  const auto shares = shamir_split(secret, 5, points_1_to(8));
  const std::vector<Share> four(shares.begin(), shares.begin() + 4);
  EXPECT_THROW(shamir_combine(four, 5), std::invalid_argument);
  try {
    EXPECT_NE(shamir_combine(four, 4), secret);
  } catch (const std::invalid_argument&) {
    // Almost always: a wrong polynomial rarely decodes to 32 bytes.
  }
}

TEST(Shamir, SplitRefusesBadArguments) {
  const Key32 secret = pattern_secret(1);
  EXPECT_THROW(shamir_split(secret, 0, {1, 2}), std::invalid_argument);
  EXPECT_THROW(shamir_split(secret, 3, {1, 2}), std::invalid_argument);
  EXPECT_THROW(shamir_split(secret, 2, {1, 0, 3}), std::invalid_argument);
  EXPECT_THROW(shamir_split(secret, 2, {1, 2, 1}), std::invalid_argument);
}

TEST(Shamir, CombineRefusesRepeatedOrZeroX) {
  auto shares = shamir_split(pattern_secret(5), 3, points_1_to(4));
  auto repeated = shares;
  repeated[2].x = repeated[0].x;
  EXPECT_THROW(shamir_combine(repeated, 3), std::invalid_argument);
  auto zero = shares;
  zero[1].x = 0;
  EXPECT_THROW(shamir_combine(zero, 3), std::invalid_argument);
  EXPECT_THROW(shamir_combine(shares, 0), std::invalid_argument);
}

TEST(Shamir, CombineRefusesValuesOutsideTheField) {
  auto shares = shamir_split(pattern_secret(5), 2, points_1_to(2));
  shares[1].y[3] = kP;
  EXPECT_THROW(shamir_combine(shares, 2), std::invalid_argument);
  shares[1].y[3] = ~uint64_t{0};
  EXPECT_THROW(shamir_combine(shares, 2), std::invalid_argument);
}

TEST(Shamir, SharesOfDifferentSecretsDoNotCombine) {
  const Key32 a = pattern_secret(11), b = pattern_secret(12);
  const auto shares_a = shamir_split(a, 3, points_1_to(3));
  const auto shares_b = shamir_split(b, 3, points_1_to(3));
  const std::vector<Share> mixed = {shares_a[0], shares_a[1], shares_b[2]};
  try {
    const Key32 result = shamir_combine(mixed, 3);
    EXPECT_NE(result, a);
    EXPECT_NE(result, b);
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("different secrets"), std::string::npos);
  }
}

// f(x) = s + 5x per chunk, built by hand: y = s + 5x (no wrap for small s).
TEST(Shamir, KnownLinearPolynomialInterpolates) {
  const std::array<uint64_t, kShamirChunks> s = {100, 200, 0, 0, 42};
  std::vector<Share> shares;
  for (uint32_t x : {3u, 10u}) {
    Share share;
    share.x = x;
    for (size_t c = 0; c < kShamirChunks; ++c) share.y[c] = s[c] + 5 * x;
    shares.push_back(share);
  }
  EXPECT_EQ(shamir_combine(shares, 2), chunked_secret());
}

// f(x) = s + (p-1) x + (p-2) x^2 = s - x - 2x^2 (mod p), at x = 1, 2, 3:
// s - 3, s - 10, s - 21, wrapping below zero for the zero chunks. The
// Lagrange weights (3, -3, 1) pass through inverses of 2 and large products.
TEST(Shamir, KnownQuadraticWithWrappingInterpolates) {
  const std::array<uint64_t, kShamirChunks> s = {100, 200, 0, 0, 42};
  const uint64_t offsets[] = {3, 10, 21};
  std::vector<Share> shares;
  for (uint32_t x = 1; x <= 3; ++x) {
    Share share;
    share.x = x;
    for (size_t c = 0; c < kShamirChunks; ++c) {
      const uint64_t off = offsets[x - 1];
      share.y[c] = s[c] >= off ? s[c] - off : s[c] + kP - off;
    }
    shares.push_back(share);
  }
  EXPECT_EQ(shamir_combine(shares, 3), chunked_secret());
  std::swap(shares[0], shares[2]);
  EXPECT_EQ(shamir_combine(shares, 3), chunked_secret());
}

// Constant chunks (t = 1) that do not fit their byte width are refused.
TEST(Shamir, OversizedChunksDoNotDecode) {
  Share share;
  share.x = 1;
  share.y[0] = uint64_t{1} << 56;
  EXPECT_THROW(shamir_combine({share}, 1), std::invalid_argument);
  share.y[0] = (uint64_t{1} << 56) - 1;
  EXPECT_NO_THROW(shamir_combine({share}, 1));
  share.y[4] = uint64_t{1} << 32;
  EXPECT_THROW(shamir_combine({share}, 1), std::invalid_argument);
  share.y[4] = (uint64_t{1} << 32) - 1;
  Key32 expected;
  expected.fill(0);
  for (size_t i = 0; i < 7; ++i) expected[i] = 0xff;
  for (size_t i = 28; i < 32; ++i) expected[i] = 0xff;
  EXPECT_EQ(shamir_combine({share}, 1), expected);
}

TEST(Shamir, WireRoundTripAndLayout) {
  Share share;
  share.x = 0x04030201;
  share.y = {1, 0x1122334455667788, 0, kP - 1, 7};
  const std::string wire = share_to_wire(share);
  ASSERT_EQ(wire.size(), 44u);
  EXPECT_EQ(wire.substr(0, 4), std::string("\x01\x02\x03\x04"));
  EXPECT_EQ(wire.substr(12, 8), std::string("\x88\x77\x66\x55\x44\x33\x22\x11"));
  const Share back = share_from_wire(wire);
  EXPECT_EQ(back.x, share.x);
  EXPECT_EQ(back.y, share.y);

  for (const Share& s : shamir_split(pattern_secret(4), 2, {1, 99})) {
    const Share copy = share_from_wire(share_to_wire(s));
    EXPECT_EQ(copy.x, s.x);
    EXPECT_EQ(copy.y, s.y);
  }
}

TEST(Shamir, WireRefusesWrongLengthAndOutOfFieldValues) {
  const std::string wire = share_to_wire(shamir_split(pattern_secret(4), 1, {1}).front());
  EXPECT_THROW(share_from_wire(wire.substr(0, 43)), std::invalid_argument);
  EXPECT_THROW(share_from_wire(wire + '\0'), std::invalid_argument);
  EXPECT_THROW(share_from_wire(""), std::invalid_argument);
  std::string bad = wire;
  for (size_t i = 36; i < 44; ++i) bad[i] = '\xff';  // y[4] = 2^64 - 1
  EXPECT_THROW(share_from_wire(bad), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::secagg
