// The masks' pseudo-random generator: AES-256-CTR keyed with a 32-byte seed
// (zero IV; every seed is used for one vector only), read as little-endian
// uint64 words in Z_2^64.
#pragma once

#include <cstddef>
#include <cstdint>

#include "secagg/bytes.h"

namespace cleave::secagg {

// words[i] += PRG(seed)[i] when add, words[i] -= PRG(seed)[i] otherwise
// (wrapping, mod 2^64), for i < n.
void apply_mask(const Key32& seed, bool add, uint64_t* words, size_t n);

}  // namespace cleave::secagg
