#include "secagg/mask_prg.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <vector>

namespace cleave::secagg {
namespace {

Key32 fixed_seed(uint8_t start) {
  Key32 seed;
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(start + i);
  return seed;
}

std::vector<uint64_t> mask_of(const Key32& seed, size_t n) {
  std::vector<uint64_t> words(n, 0);
  apply_mask(seed, true, words.data(), n);
  return words;
}

uint64_t le64(const uint8_t* bytes) {
  uint64_t word = 0;
  for (int i = 0; i < 8; ++i) word |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  return word;
}

// AES-256(seed, block) through ECB: the CTR key stream's blocks, computed
// without CTR mode.
std::vector<uint8_t> aes_ecb(const Key32& seed, const std::vector<uint8_t>& blocks) {
  EVP_CIPHER_CTX* context = EVP_CIPHER_CTX_new();
  EXPECT_EQ(EVP_EncryptInit_ex(context, EVP_aes_256_ecb(), nullptr, seed.data(), nullptr), 1);
  EVP_CIPHER_CTX_set_padding(context, 0);
  std::vector<uint8_t> out(blocks.size());
  int length = 0;
  EXPECT_EQ(EVP_EncryptUpdate(context, out.data(), &length, blocks.data(),
                              static_cast<int>(blocks.size())),
            1);
  EXPECT_EQ(length, static_cast<int>(blocks.size()));
  EVP_CIPHER_CTX_free(context);
  return out;
}

TEST(MaskPrg, FirstBlocksAreAesOfTheCounter) {
  const Key32 seed = fixed_seed(0x40);
  std::vector<uint8_t> counters(32, 0);
  counters[31] = 1;  // big-endian counter blocks 0 and 1
  const std::vector<uint8_t> stream = aes_ecb(seed, counters);
  const std::vector<uint64_t> mask = mask_of(seed, 4);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(mask[i], le64(&stream[8 * i])) << "word " << i;
}

// Across the 64 KiB chunks the counter runs on: compare with ECB of
// counters around the boundary (words 8190..8193 are blocks 4095, 4096).
TEST(MaskPrg, CounterContinuesAcrossChunks) {
  const Key32 seed = fixed_seed(7);
  std::vector<uint8_t> counters(32, 0);
  counters[14] = 0x0f, counters[15] = 0xff;  // 4095
  counters[30] = 0x10;                       // 4096
  const std::vector<uint8_t> stream = aes_ecb(seed, counters);
  const std::vector<uint64_t> mask = mask_of(seed, 20000);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(mask[8190 + i], le64(&stream[8 * i])) << "word " << i;
  // A shorter vector is a prefix of a longer one.
  const std::vector<uint64_t> shorter = mask_of(seed, 8193);
  EXPECT_TRUE(std::equal(shorter.begin(), shorter.end(), mask.begin()));
}

TEST(MaskPrg, AddThenSubtractRestoresTheInput) {
  std::vector<uint64_t> words(100003);
  for (size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9e3779b97f4a7c15ull;
  const std::vector<uint64_t> input = words;
  const Key32 a = fixed_seed(1), b = fixed_seed(2);
  apply_mask(a, true, words.data(), words.size());
  apply_mask(b, false, words.data(), words.size());
  EXPECT_NE(words, input);
  apply_mask(a, false, words.data(), words.size());
  apply_mask(b, true, words.data(), words.size());
  EXPECT_EQ(words, input);
}

TEST(MaskPrg, AdditionWrapsModulo2To64) {
  const Key32 seed = fixed_seed(3);
  const uint64_t stream = mask_of(seed, 1)[0];
  uint64_t word = ~uint64_t{0};
  apply_mask(seed, true, &word, 1);
  EXPECT_EQ(word, stream - 1);
  word = 0;
  apply_mask(seed, false, &word, 1);
  EXPECT_EQ(word, uint64_t{0} - stream);
}

TEST(MaskPrg, SameSeedSameMaskOtherSeedOtherMask) {
  EXPECT_EQ(mask_of(fixed_seed(5), 1000), mask_of(fixed_seed(5), 1000));
  Key32 other = fixed_seed(5);
  other[31] ^= 1;
  EXPECT_NE(mask_of(fixed_seed(5), 1000), mask_of(other, 1000));
}

TEST(MaskPrg, EmptyVectorIsANoOp) { apply_mask(fixed_seed(1), true, nullptr, 0); }

// Byte frequencies of a 1 MiB mask: chi-square with 255 degrees of freedom
// stays below 380 but with probability about 1e-6 (the seed is fixed).
TEST(MaskPrg, BytesLookUniform) {
  const std::vector<uint64_t> mask = mask_of(fixed_seed(0xa5), (1 << 20) / 8);
  std::vector<double> counts(256, 0);
  for (uint64_t word : mask) {
    for (int i = 0; i < 8; ++i) counts[(word >> (8 * i)) & 0xff] += 1;
  }
  const double expected = (1 << 20) / 256.0;
  double chi2 = 0;
  for (double count : counts) chi2 += (count - expected) * (count - expected) / expected;
  EXPECT_LT(chi2, 380.0);
}

}  // namespace
}  // namespace cleave::secagg
