// Authenticated encryption of the shares one site sends another through the
// aggregator: AES-256-GCM with a random 96-bit nonce, the associated data
// binding round, sender and recipient so a box cannot be replayed elsewhere.
#pragma once

#include <optional>
#include <string>

#include "secagg/bytes.h"

namespace cleave::secagg {

// nonce (12) || ciphertext || tag (16).
std::string seal_box(const Key32& key, const std::string& plaintext, const std::string& associated_data);

// The plaintext, or nullopt when the box is too short, was altered, or was
// sealed under another key or associated data.
std::optional<std::string> open_box(const Key32& key, const std::string& box, const std::string& associated_data);

}  // namespace cleave::secagg
