// The EVP context handles secagg uses, alongside secure/openssl_handles.h's.
#pragma once

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include "secure/openssl_handles.h"

namespace cleave::secagg {

using EvpPkeyCtxPtr = secure::OpensslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpCipherCtxPtr = secure::OpensslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using EvpMdCtxPtr = secure::OpensslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpKdfPtr = secure::OpensslPtr<EVP_KDF, EVP_KDF_free>;
using EvpKdfCtxPtr = secure::OpensslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using X509StoreCtxPtr = secure::OpensslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

}  // namespace cleave::secagg
