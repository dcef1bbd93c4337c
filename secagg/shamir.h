// Shamir t-of-n secret sharing (Shamir 1979) of 32-byte secrets over the
// prime field GF(p), p = 2^61 - 1: the secret is cut into five 56-bit
// chunks, each shared with its own random polynomial of degree t - 1
// (coefficients from RAND_bytes). Any t shares give the secret back by
// Lagrange interpolation at 0; fewer reveal nothing about it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "secagg/bytes.h"

namespace cleave::secagg {

inline constexpr uint64_t kShamirPrime = (uint64_t{1} << 61) - 1;
inline constexpr size_t kShamirChunks = 5;

struct Share {
  uint32_t x = 0;                           // evaluation point, >= 1
  std::array<uint64_t, kShamirChunks> y{};  // each < kShamirPrime
};

// One share per x in `points` (distinct, >= 1); 1 <= threshold <= points.size().
// Throws std::invalid_argument otherwise.
std::vector<Share> shamir_split(const Key32& secret, size_t threshold, const std::vector<uint32_t>& points);

// The secret from at least `threshold` shares with distinct x (the first
// `threshold` are used). Throws std::invalid_argument with fewer, with a
// repeated or zero x, or with a y outside the field, or when the chunks do
// not decode to 32 bytes (shares of different secrets).
Key32 shamir_combine(const std::vector<Share>& shares, size_t threshold);

// A share as 4 + 5 * 8 bytes (little-endian) and back; from_wire throws
// std::invalid_argument on a wrong length or an out-of-field value.
std::string share_to_wire(const Share& share);
Share share_from_wire(const std::string& bytes);

}  // namespace cleave::secagg
