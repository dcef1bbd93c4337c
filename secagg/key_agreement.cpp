#include "secagg/key_agreement.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/proverr.h>

#include <stdexcept>

#include "secagg/evp_handles.h"

namespace cleave::secagg {

namespace {

using secure::check_openssl;
using secure::EvpPkeyPtr;

EvpPkeyPtr private_key_of(const Key32& private_key) {
  return EvpPkeyPtr(
      check_openssl(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(),
                                                 private_key.size()),
                    "cannot load an X25519 private key"));
}

Key32 raw_public_key(EVP_PKEY* key) {
  Key32 public_key;
  size_t length = public_key.size();
  check_openssl(EVP_PKEY_get_raw_public_key(key, public_key.data(), &length),
                "EVP_PKEY_get_raw_public_key");
  if (length != public_key.size()) throw std::runtime_error("X25519 public key is not 32 bytes");
  return public_key;
}

bool all_zero(const Key32& bytes) {
  uint8_t bits = 0;
  for (uint8_t b : bytes) bits |= b;
  return bits == 0;
}

[[noreturn]] void throw_low_order() {
  throw std::invalid_argument(
      "the peer's X25519 public key is a low-order point (the shared secret is all zero): "
      "the peer's key is malformed or malicious; drop that peer");
}

// HKDF-SHA256 (RFC 5869) without salt, so the salt is 32 zero bytes.
Key32 hkdf_sha256(const Key32& input_key, const std::string& info) {
  // Fetched once: an OpenSSL 3 fetch looks the algorithm up by name every time.
  static EVP_KDF* const kdf =
      check_openssl(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr), "OpenSSL has no HKDF");
  EvpKdfCtxPtr context(check_openssl(EVP_KDF_CTX_new(kdf), "EVP_KDF_CTX_new"));
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(input_key.data()),
                                        input_key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  Key32 key;
  check_openssl(EVP_KDF_derive(context.get(), key.data(), key.size(), params), "HKDF-SHA256");
  return key;
}

}  // namespace

X25519KeyPair x25519_generate() {
  EvpPkeyCtxPtr context(
      check_openssl(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr), "EVP_PKEY_CTX_new_id(X25519)"));
  check_openssl(EVP_PKEY_keygen_init(context.get()), "EVP_PKEY_keygen_init(X25519)");
  EVP_PKEY* generated = nullptr;
  check_openssl(EVP_PKEY_keygen(context.get(), &generated), "cannot generate an X25519 key");
  EvpPkeyPtr key(generated);

  X25519KeyPair pair;
  pair.public_key = raw_public_key(key.get());
  size_t length = pair.private_key.size();
  check_openssl(EVP_PKEY_get_raw_private_key(key.get(), pair.private_key.data(), &length),
                "EVP_PKEY_get_raw_private_key");
  return pair;
}

Key32 x25519_public_of(const Key32& private_key) {
  return raw_public_key(private_key_of(private_key).get());
}

namespace {

Key32 raw_agreement(EVP_PKEY* own, const Key32& peer_public) {
  EvpPkeyPtr peer(check_openssl(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_public.data(), peer_public.size()),
      "cannot load the peer's X25519 public key"));
  EvpPkeyCtxPtr context(check_openssl(EVP_PKEY_CTX_new(own, nullptr), "EVP_PKEY_CTX_new"));
  check_openssl(EVP_PKEY_derive_init(context.get()), "EVP_PKEY_derive_init(X25519)");
  check_openssl(EVP_PKEY_derive_set_peer(context.get(), peer.get()), "EVP_PKEY_derive_set_peer");

  Key32 secret;
  size_t length = secret.size();
  if (EVP_PKEY_derive(context.get(), secret.data(), &length) != 1) {
    // OpenSSL 3 refuses an all-zero result with this reason, and only it.
    const unsigned long error = ERR_peek_last_error();
    if (ERR_GET_LIB(error) == ERR_LIB_PROV &&
        ERR_GET_REASON(error) == PROV_R_FAILED_DURING_DERIVATION) {
      ERR_clear_error();
      throw_low_order();
    }
    secure::throw_openssl_error("X25519 key agreement");
  }
  if (length != secret.size()) throw std::runtime_error("X25519 shared secret is not 32 bytes");
  if (all_zero(secret)) throw_low_order();
  return secret;
}

Key32 derived(Key32 secret, const std::string& info) {
  try {
    const Key32 key = hkdf_sha256(secret, info);
    wipe(secret);
    return key;
  } catch (...) {
    wipe(secret);
    throw;
  }
}

}  // namespace

Key32 x25519_raw(const Key32& private_key, const Key32& peer_public) {
  return raw_agreement(private_key_of(private_key).get(), peer_public);
}

Key32 x25519_agree(const Key32& private_key, const Key32& peer_public, const std::string& info) {
  return derived(x25519_raw(private_key, peer_public), info);
}

struct X25519Private::Key {
  EvpPkeyPtr key;
};

X25519Private::X25519Private(const Key32& private_key) : key_(std::make_unique<Key>()) {
  key_->key = private_key_of(private_key);
}

X25519Private::~X25519Private() = default;

Key32 X25519Private::public_key() const { return raw_public_key(key_->key.get()); }

Key32 X25519Private::agree(const Key32& peer_public, const std::string& info) const {
  return derived(raw_agreement(key_->key.get(), peer_public), info);
}

}  // namespace cleave::secagg
