#include "secagg/share_box.h"

#include <gtest/gtest.h>

namespace cleave::secagg {
namespace {

const std::string kAad = "round 3 | site-a -> site-b";

TEST(ShareBox, RoundTrip) {
  const Key32 key = random_key();
  for (const std::string& plaintext :
       {std::string(), std::string("shares of site-a"), std::string(100000, '\x5a')}) {
    const std::string box = seal_box(key, plaintext, kAad);
    EXPECT_EQ(box.size(), 12 + plaintext.size() + 16);
    const auto opened = open_box(key, box, kAad);
    ASSERT_TRUE(opened.has_value()) << plaintext.size() << " bytes";
    EXPECT_EQ(*opened, plaintext);
  }
}

TEST(ShareBox, EmptyAssociatedDataWorks) {
  const Key32 key = random_key();
  EXPECT_EQ(open_box(key, seal_box(key, "x", ""), ""), std::optional<std::string>("x"));
  EXPECT_FALSE(open_box(key, seal_box(key, "x", ""), "y"));
}

TEST(ShareBox, AnyAlteredByteIsRefused) {
  const Key32 key = random_key();
  const std::string box = seal_box(key, "the shares", kAad);
  for (size_t i = 0; i < box.size(); ++i) {  // nonce, ciphertext and tag
    std::string altered = box;
    altered[i] ^= 0x01;
    EXPECT_FALSE(open_box(key, altered, kAad)) << "byte " << i;
  }
}

TEST(ShareBox, WrongKeyOrAssociatedDataIsRefused) {
  const Key32 key = random_key();
  const std::string box = seal_box(key, "the shares", kAad);
  EXPECT_FALSE(open_box(random_key(), box, kAad));
  EXPECT_FALSE(open_box(key, box, "round 3 | site-a -> site-c"));
  EXPECT_FALSE(open_box(key, box, ""));
}

TEST(ShareBox, TruncatedOrExtendedBoxesAreRefused) {
  const Key32 key = random_key();
  const std::string box = seal_box(key, "the shares", kAad);
  for (size_t size : {size_t{0}, size_t{11}, size_t{27}, box.size() - 1}) {
    EXPECT_FALSE(open_box(key, box.substr(0, size), kAad)) << size << " bytes";
  }
  EXPECT_FALSE(open_box(key, box + '\0', kAad));
}

TEST(ShareBox, TwoSealsOfOnePlaintextDiffer) {
  const Key32 key = random_key();
  const std::string a = seal_box(key, "same", kAad), b = seal_box(key, "same", kAad);
  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, 12), b.substr(0, 12));
}

}  // namespace
}  // namespace cleave::secagg
