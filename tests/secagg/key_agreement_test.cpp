#include "secagg/key_agreement.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace cleave::secagg {
namespace {

ByteString from_hex(const std::string& hex) {
  ByteString bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

Key32 key_from_hex(const std::string& hex) {
  const ByteString bytes = from_hex(hex);
  Key32 key{};
  EXPECT_EQ(bytes.size(), key.size()) << hex;
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}

// The first 32 bytes of HKDF-SHA256 (RFC 5869) with an empty salt, written
// with HMAC directly: PRK = HMAC(32 zero bytes, ikm), T(1) = HMAC(PRK, info || 0x01).
Key32 reference_hkdf(const ByteString& ikm, const std::string& info) {
  const uint8_t zero_salt[32] = {};
  uint8_t prk[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), zero_salt, sizeof zero_salt, ikm.data(), ikm.size(), prk, &length);
  EXPECT_EQ(length, 32u);
  ByteString block(info.begin(), info.end());
  block.push_back(0x01);
  Key32 okm;
  HMAC(EVP_sha256(), prk, sizeof prk, block.data(), block.size(), okm.data(), &length);
  return okm;
}

// RFC 7748 section 6.1.
const char* kAlicePrivate = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const char* kAlicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const char* kBobPrivate = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const char* kBobPublic = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const char* kShared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

TEST(KeyAgreement, Rfc7748Vectors) {
  const Key32 alice = key_from_hex(kAlicePrivate), bob = key_from_hex(kBobPrivate);
  EXPECT_EQ(x25519_public_of(alice), key_from_hex(kAlicePublic));
  EXPECT_EQ(x25519_public_of(bob), key_from_hex(kBobPublic));
  EXPECT_EQ(x25519_raw(alice, key_from_hex(kBobPublic)), key_from_hex(kShared));
  EXPECT_EQ(x25519_raw(bob, key_from_hex(kAlicePublic)), key_from_hex(kShared));
}

// RFC 5869 test case 3 (empty salt and info) checks the reference HKDF.
TEST(KeyAgreement, ReferenceHkdfMatchesRfc5869) {
  const ByteString ikm(22, 0x0b);
  EXPECT_EQ(reference_hkdf(ikm, ""),
            key_from_hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"));
}

TEST(KeyAgreement, AgreeIsHkdfOfTheRawSecret) {
  const ByteString shared = from_hex(kShared);
  for (const std::string& info :
       {std::string(), std::string("cleave secagg round 7 mask"), std::string(200, 'x')}) {
    EXPECT_EQ(x25519_agree(key_from_hex(kAlicePrivate), key_from_hex(kBobPublic), info),
              reference_hkdf(shared, info))
        << "info of " << info.size() << " bytes";
  }
}

TEST(KeyAgreement, IsSymmetric) {
  const X25519KeyPair a = x25519_generate(), b = x25519_generate();
  EXPECT_NE(a.public_key, b.public_key);
  EXPECT_EQ(x25519_agree(a.private_key, b.public_key, "round 1"),
            x25519_agree(b.private_key, a.public_key, "round 1"));
}

TEST(KeyAgreement, DifferentInfoGivesDifferentKeys) {
  const X25519KeyPair a = x25519_generate(), b = x25519_generate();
  EXPECT_NE(x25519_agree(a.private_key, b.public_key, "mask"),
            x25519_agree(a.private_key, b.public_key, "box"));
}

TEST(KeyAgreement, PublicOfPrivateIsThePublicKey) {
  for (int i = 0; i < 3; ++i) {
    const X25519KeyPair pair = x25519_generate();
    EXPECT_EQ(x25519_public_of(pair.private_key), pair.public_key);
  }
}

// u = 0 and u = 1 are low-order points: X25519 with them is all zero.
TEST(KeyAgreement, LowOrderPublicKeysAreRefused) {
  const X25519KeyPair a = x25519_generate();
  Key32 low_order{};
  EXPECT_THROW(x25519_agree(a.private_key, low_order, "info"), std::invalid_argument);
  EXPECT_THROW(x25519_raw(a.private_key, low_order), std::invalid_argument);
  low_order[0] = 1;
  EXPECT_THROW(x25519_agree(a.private_key, low_order, "info"), std::invalid_argument);
}

TEST(KeyAgreement, ALoadedPrivateKeyAgreesAsTheFunctionDoes) {
  const X25519KeyPair a = x25519_generate();
  const X25519KeyPair b = x25519_generate();
  const X25519Private loaded(a.private_key);
  EXPECT_EQ(loaded.public_key(), a.public_key);
  EXPECT_EQ(loaded.agree(b.public_key, "pair"), x25519_agree(a.private_key, b.public_key, "pair"));
  EXPECT_EQ(loaded.agree(b.public_key, "pair"), x25519_agree(b.private_key, a.public_key, "pair"));
  EXPECT_THROW(loaded.agree(Key32{}, "pair"), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::secagg
