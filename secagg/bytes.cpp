#include "secagg/bytes.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

#include "secure/openssl_handles.h"

namespace cleave::secagg {

std::string key_to_wire(const Key32& key) {
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

Key32 key_from_wire(const std::string& bytes, const std::string& what) {
  Key32 key;
  if (bytes.size() != key.size()) {
    throw std::invalid_argument(
        what + " has " + std::to_string(bytes.size()) +
        " bytes, expected 32: is the peer running the same secagg version?");
  }
  std::memcpy(key.data(), bytes.data(), key.size());
  return key;
}

Key32 random_key() {
  Key32 key;
  secure::check_openssl(RAND_bytes(key.data(), static_cast<int>(key.size())),
                        "RAND_bytes cannot produce a random key");
  return key;
}

void wipe(Key32& key) { OPENSSL_cleanse(key.data(), key.size()); }

}  // namespace cleave::secagg
