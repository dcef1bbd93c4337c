// X25519 key agreement (RFC 7748) through OpenSSL's EVP interface, with the
// shared secret run through HKDF-SHA256 (RFC 5869) so that every use of a
// pair's secret gets its own key.
#pragma once

#include <memory>
#include <string>

#include "secagg/bytes.h"

namespace cleave::secagg {

struct X25519KeyPair {
  Key32 public_key;    // raw 32-byte u-coordinate
  Key32 private_key;   // raw 32 bytes (shared out with Shamir for dropout recovery)
};

X25519KeyPair x25519_generate();

// The public key of a raw private key (to check a reconstructed one).
Key32 x25519_public_of(const Key32& private_key);

// The raw shared secret X25519(private_key, peer_public) of RFC 7748; use
// x25519_agree, which derives a key from it. Throws like x25519_agree.
Key32 x25519_raw(const Key32& private_key, const Key32& peer_public);

// HKDF-SHA256(salt = none, ikm = X25519(private_key, peer_public), info) -> 32
// bytes. Symmetric: agree(a.priv, b.pub, i) == agree(b.priv, a.pub, i).
// Throws std::invalid_argument when peer_public is a low-order point (the
// all-zero shared secret), std::runtime_error on other OpenSSL failures.
Key32 x25519_agree(const Key32& private_key, const Key32& peer_public, const std::string& info);

// One private key loaded once for many agreements (loading a raw X25519
// private key derives its public key: a scalar multiplication, as costly as
// the agreement itself). Not thread-safe.
class X25519Private {
 public:
  explicit X25519Private(const Key32& private_key);
  ~X25519Private();
  X25519Private(const X25519Private&) = delete;
  X25519Private& operator=(const X25519Private&) = delete;
  Key32 public_key() const;
  // x25519_agree(private_key, peer_public, info).
  Key32 agree(const Key32& peer_public, const std::string& info) const;

 private:
  struct Key;
  std::unique_ptr<Key> key_;
};

}  // namespace cleave::secagg
