#include "secagg/shamir.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <set>
#include <stdexcept>

#include "secure/openssl_handles.h"

namespace cleave::secagg {

namespace {

constexpr uint64_t kP = kShamirPrime;
constexpr size_t kChunkBytes = 7;      // chunks 0..3: 56 bits
constexpr size_t kLastChunkBytes = 4;  // chunk 4: 32 bits (4 * 7 + 4 = 32)
constexpr size_t kWireBytes = 4 + kShamirChunks * 8;

static_assert((kShamirChunks - 1) * kChunkBytes + kLastChunkBytes == sizeof(Key32));

// GF(2^61 - 1); operands are always < p.
uint64_t add(uint64_t a, uint64_t b) {
  const uint64_t sum = a + b;
  return sum >= kP ? sum - kP : sum;
}

uint64_t sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }

// 2^61 = 1 (mod p), so the 122-bit product folds into its low and high 61 bits.
uint64_t mul(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  const uint64_t folded =
      static_cast<uint64_t>(product & kP) + static_cast<uint64_t>(product >> 61);
  return folded >= kP ? folded - kP : folded;
}

// Fermat: a^(p-2) = a^-1 for a != 0.
uint64_t inverse(uint64_t a) {
  uint64_t result = 1;
  for (uint64_t exponent = kP - 2; exponent != 0; exponent >>= 1) {
    if (exponent & 1) result = mul(result, a);
    a = mul(a, a);
  }
  return result;
}

// Uniform in [0, p): 61 random bits, rejecting the one value p.
uint64_t random_element() {
  for (;;) {
    uint64_t value = 0;
    secure::check_openssl(RAND_bytes(reinterpret_cast<uint8_t*>(&value), sizeof value),
                          "RAND_bytes for a Shamir coefficient");
    value &= kP;
    if (value < kP) return value;
  }
}

size_t chunk_size(size_t chunk) {
  return chunk + 1 < kShamirChunks ? kChunkBytes : kLastChunkBytes;
}

std::array<uint64_t, kShamirChunks> encode(const Key32& secret) {
  std::array<uint64_t, kShamirChunks> chunks{};
  for (size_t c = 0; c < kShamirChunks; ++c) {
    for (size_t i = chunk_size(c); i-- > 0;) {
      chunks[c] = (chunks[c] << 8) | secret[c * kChunkBytes + i];
    }
  }
  return chunks;
}

// Wipes `chunks` either way.
Key32 decode(std::array<uint64_t, kShamirChunks>& chunks) {
  bool fits = true;
  for (size_t c = 0; c < kShamirChunks; ++c) fits = fits && (chunks[c] >> (8 * chunk_size(c))) == 0;
  if (!fits) {
    OPENSSL_cleanse(chunks.data(), sizeof chunks);
    throw std::invalid_argument(
        "shares do not decode to a 32-byte secret (shares of different secrets?)");
  }
  Key32 secret;
  for (size_t c = 0; c < kShamirChunks; ++c) {
    for (size_t i = 0; i < chunk_size(c); ++i) {
      secret[c * kChunkBytes + i] = static_cast<uint8_t>(chunks[c] >> (8 * i));
    }
  }
  OPENSSL_cleanse(chunks.data(), sizeof chunks);
  return secret;
}

void check_distinct_points(const std::vector<uint32_t>& xs) {
  std::set<uint32_t> seen;
  for (uint32_t x : xs) {
    if (x == 0) {
      throw std::invalid_argument(
          "Shamir share point x = 0 would be the secret itself: use x >= 1");
    }
    if (!seen.insert(x).second) {
      throw std::invalid_argument("Shamir share point x = " + std::to_string(x) +
                                  " is given twice: every share needs its own x");
    }
  }
}

void store_le(uint64_t value, size_t bytes, std::string& out) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t load_le(const std::string& in, size_t offset, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = bytes; i-- > 0;) value = (value << 8) | static_cast<uint8_t>(in[offset + i]);
  return value;
}

}  // namespace

std::vector<Share> shamir_split(const Key32& secret, size_t threshold,
                                const std::vector<uint32_t>& points) {
  if (threshold < 1 || threshold > points.size()) {
    throw std::invalid_argument("Shamir threshold " + std::to_string(threshold) + " with " +
                                std::to_string(points.size()) +
                                " shares: use 1 <= threshold <= number of shares");
  }
  check_distinct_points(points);

  std::vector<Share> shares(points.size());
  for (size_t s = 0; s < points.size(); ++s) shares[s].x = points[s];
  std::array<uint64_t, kShamirChunks> chunks = encode(secret);
  std::vector<uint64_t> coefficients(threshold);  // f(x) = c[0] + c[1] x + ...
  for (size_t c = 0; c < kShamirChunks; ++c) {
    coefficients[0] = chunks[c];
    for (size_t k = 1; k < threshold; ++k) coefficients[k] = random_element();
    for (Share& share : shares) {
      uint64_t y = 0;  // Horner
      for (size_t k = threshold; k-- > 0;) y = add(mul(y, share.x), coefficients[k]);
      share.y[c] = y;
    }
  }
  OPENSSL_cleanse(coefficients.data(), coefficients.size() * sizeof(uint64_t));
  OPENSSL_cleanse(chunks.data(), sizeof chunks);
  return shares;
}

Key32 shamir_combine(const std::vector<Share>& shares, size_t threshold) {
  if (threshold < 1 || shares.size() < threshold) {
    throw std::invalid_argument("Shamir reconstruction needs " + std::to_string(threshold) +
                                " shares (threshold >= 1), got " + std::to_string(shares.size()));
  }
  std::vector<uint32_t> xs(threshold);
  for (size_t i = 0; i < threshold; ++i) {
    xs[i] = shares[i].x;
    for (uint64_t y : shares[i].y) {
      if (y >= kP) {
        throw std::invalid_argument("Shamir share of x = " + std::to_string(xs[i]) +
                                    " has a value outside GF(2^61 - 1): the share is corrupt");
      }
    }
  }
  check_distinct_points(xs);

  // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i).
  std::vector<uint64_t> basis(threshold);
  for (size_t i = 0; i < threshold; ++i) {
    uint64_t numerator = 1, denominator = 1;
    for (size_t j = 0; j < threshold; ++j) {
      if (j == i) continue;
      numerator = mul(numerator, xs[j]);
      denominator = mul(denominator, sub(xs[j], xs[i]));
    }
    basis[i] = mul(numerator, inverse(denominator));
  }
  std::array<uint64_t, kShamirChunks> chunks{};
  for (size_t c = 0; c < kShamirChunks; ++c) {
    for (size_t i = 0; i < threshold; ++i)
      chunks[c] = add(chunks[c], mul(basis[i], shares[i].y[c]));
  }
  return decode(chunks);
}

std::string share_to_wire(const Share& share) {
  std::string wire;
  wire.reserve(kWireBytes);
  store_le(share.x, 4, wire);
  for (uint64_t y : share.y) store_le(y, 8, wire);
  return wire;
}

Share share_from_wire(const std::string& bytes) {
  if (bytes.size() != kWireBytes) {
    throw std::invalid_argument("Shamir share has " + std::to_string(bytes.size()) +
                                " bytes, expected " + std::to_string(kWireBytes) +
                                ": is the peer running the same secagg version?");
  }
  Share share;
  share.x = static_cast<uint32_t>(load_le(bytes, 0, 4));
  for (size_t c = 0; c < kShamirChunks; ++c) {
    share.y[c] = load_le(bytes, 4 + 8 * c, 8);
    if (share.y[c] >= kP) {
      throw std::invalid_argument("Shamir share of x = " + std::to_string(share.x) +
                                  " has a value outside GF(2^61 - 1): the share is corrupt");
    }
  }
  return share;
}

}  // namespace cleave::secagg
