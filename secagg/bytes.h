// Fixed-size key material for secure aggregation.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cleave::secagg {

using Key32 = std::array<uint8_t, 32>;
using ByteString = std::vector<uint8_t>;

// Key32 <-> std::string of exactly 32 bytes (the wire form); from_wire
// throws std::invalid_argument naming `what` when the size is not 32.
std::string key_to_wire(const Key32& key);
Key32 key_from_wire(const std::string& bytes, const std::string& what);

// 32 bytes from OpenSSL's RAND_bytes (throws std::runtime_error on failure).
Key32 random_key();

// Overwrites `key` with zeros in a way the compiler keeps (OPENSSL_cleanse).
void wipe(Key32& key);

}  // namespace cleave::secagg
