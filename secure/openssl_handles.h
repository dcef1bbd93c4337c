// OpenSSL handles owned by std::unique_ptr, and OpenSSL's error queue as text.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace cleave::secure {

template <typename T, void (*Free)(T*)>
struct OpensslDeleter {
  void operator()(T* handle) const { Free(handle); }
};

template <typename T, void (*Free)(T*)>
using OpensslPtr = std::unique_ptr<T, OpensslDeleter<T, Free>>;

using SslCtxPtr = OpensslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = OpensslPtr<SSL, SSL_free>;
using BioPtr = OpensslPtr<BIO, BIO_free_all>;
using X509Ptr = OpensslPtr<X509, X509_free>;
using X509CrlPtr = OpensslPtr<X509_CRL, X509_CRL_free>;
using X509StorePtr = OpensslPtr<X509_STORE, X509_STORE_free>;
using X509NamePtr = OpensslPtr<X509_NAME, X509_NAME_free>;
using X509RevokedPtr = OpensslPtr<X509_REVOKED, X509_REVOKED_free>;
using X509ExtensionPtr = OpensslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using EvpPkeyPtr = OpensslPtr<EVP_PKEY, EVP_PKEY_free>;
using Asn1IntegerPtr = OpensslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;
using Asn1TimePtr = OpensslPtr<ASN1_TIME, ASN1_TIME_free>;
using BignumPtr = OpensslPtr<BIGNUM, BN_free>;
using GeneralNamesPtr = OpensslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;

// Drains this thread's OpenSSL error queue into one line
// ("error:0A000086:SSL routines::certificate verify failed; ..."), or
// "no OpenSSL error recorded" when the queue is empty.
std::string drain_openssl_errors();

// Throws std::runtime_error("<what>: <drained OpenSSL errors>").
[[noreturn]] void throw_openssl_error(const std::string& what);

// Returns `handle` or throws via throw_openssl_error when it is null.
template <typename T>
T* check_openssl(T* handle, const std::string& what) {
  if (handle == nullptr) throw_openssl_error(what);
  return handle;
}

// Throws via throw_openssl_error unless `status` is 1 (OpenSSL's success).
inline void check_openssl(int status, const std::string& what) {
  if (status != 1) throw_openssl_error(what);
}

}  // namespace cleave::secure
