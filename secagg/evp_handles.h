// The EVP context handles secagg uses, alongside secure/openssl_handles.h's.
#pragma once

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include <string>

#include "secure/openssl_handles.h"

namespace cleave::secagg {

using EvpPkeyCtxPtr = secure::OpensslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpCipherCtxPtr = secure::OpensslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using EvpMdCtxPtr = secure::OpensslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpKdfPtr = secure::OpensslPtr<EVP_KDF, EVP_KDF_free>;
using EvpKdfCtxPtr = secure::OpensslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using X509StoreCtxPtr = secure::OpensslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

// Algorithms fetched once and kept (OpenSSL 3 looks an algorithm up by name
// on every implicit fetch: EVP_aes_256_ctr() in EVP_EncryptInit_ex costs a
// lookup per call). Throw when the default provider lacks them.
inline const EVP_CIPHER* fetched_cipher(const char* name) {
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, name, nullptr);
  return secure::check_openssl(cipher, std::string("OpenSSL has no ") + name);
}
inline const EVP_CIPHER* aes_256_ctr() {
  static const EVP_CIPHER* const cipher = fetched_cipher("AES-256-CTR");
  return cipher;
}
inline const EVP_CIPHER* aes_256_gcm() {
  static const EVP_CIPHER* const cipher = fetched_cipher("AES-256-GCM");
  return cipher;
}
inline const EVP_MD* sha256() {
  static const EVP_MD* const md =
      secure::check_openssl(EVP_MD_fetch(nullptr, "SHA256", nullptr), "OpenSSL has no SHA256");
  return md;
}

}  // namespace cleave::secagg
