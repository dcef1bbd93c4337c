#include "secagg/key_signature.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "secagg/evp_handles.h"
#include "secure/node_role.h"
#include "secure/pem_files.h"

namespace cleave::secagg {

namespace {

using secure::check_openssl;

// A node certificate from `cleave ca issue` is under 1 KiB; a peer's claimed
// certificate is parsed only up to this size.
constexpr size_t kMaxCertificatePemBytes = 16 * 1024;

// SHA-256, except for keys that hash internally (Ed25519, Ed448).
const EVP_MD* digest_for(EVP_PKEY* key) {
  int nid = NID_undef;
  if (EVP_PKEY_get_default_digest_nid(key, &nid) == 2 && nid == NID_undef) return nullptr;
  return sha256();
}

const uint8_t* bytes_of(const std::string& text) {
  return reinterpret_cast<const uint8_t*>(text.data());
}

}  // namespace

struct KeySigner::Key {
  secure::EvpPkeyPtr key;
};

KeySigner::KeySigner(const secure::TlsIdentity& identity) : key_(std::make_unique<Key>()) {
  secure::X509Ptr cert = secure::read_certificate(identity.cert_path);
  key_->key = secure::read_private_key(identity.key_path);
  if (X509_check_private_key(cert.get(), key_->key.get()) != 1) {
    secure::throw_openssl_error(identity.key_path + " is not the key of " + identity.cert_path +
                                ": point key_path and cert_path at one node's files");
  }
  cert_pem_ = secure::certificate_pem(cert.get());
}

KeySigner::~KeySigner() = default;

std::string KeySigner::sign(const std::string& message) const {
  EvpMdCtxPtr context(check_openssl(EVP_MD_CTX_new(), "EVP_MD_CTX_new"));
  EVP_PKEY* key = key_->key.get();
  check_openssl(EVP_DigestSignInit(context.get(), nullptr, digest_for(key), nullptr, key),
                "EVP_DigestSignInit");
  size_t length = 0;
  check_openssl(EVP_DigestSign(context.get(), nullptr, &length, bytes_of(message), message.size()),
                "EVP_DigestSign (size)");
  std::string signature(length, '\0');
  check_openssl(EVP_DigestSign(context.get(), reinterpret_cast<uint8_t*>(signature.data()), &length,
                               bytes_of(message), message.size()),
                "cannot sign the secagg keys");
  signature.resize(length);  // ECDSA's DER signatures are often shorter than the bound
  return signature;
}

struct KeyVerifier::Store {
  secure::TlsIdentity identity;
  struct stat crl_stat {};
  std::shared_ptr<X509_STORE> store;   // replaced, not changed, when the CRL file changes
  // Certificates that chained to the CA, by their PEM: a site checks the same
  // peers every round, and the chain is most of a check's cost. An entry is
  // used only while its certificate is within its validity period.
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<X509>> chained;
  static constexpr size_t kMaxChained = 100000;
};

namespace {

// The CA (and CRL) of `identity` in a new store.
std::shared_ptr<X509_STORE> load_store(const secure::TlsIdentity& identity) {
  std::shared_ptr<X509_STORE> store(check_openssl(X509_STORE_new(), "X509_STORE_new"), X509_STORE_free);
  secure::X509Ptr ca = secure::read_certificate(identity.ca_path);
  check_openssl(X509_STORE_add_cert(store.get(), ca.get()), "cannot trust " + identity.ca_path);
  if (identity.crl_path) {
    secure::X509CrlPtr crl = secure::read_crl(*identity.crl_path);
    check_openssl(X509_STORE_add_crl(store.get(), crl.get()), "cannot use " + *identity.crl_path);
    check_openssl(X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK), "X509_V_FLAG_CRL_CHECK");
  }
  return store;
}

bool same_file_state(const struct stat& a, const struct stat& b) {
  return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_size == b.st_size &&
         a.st_ino == b.st_ino;
}

}  // namespace

KeyVerifier::KeyVerifier(const secure::TlsIdentity& identity) : store_(std::make_unique<Store>()) {
  store_->identity = identity;
  if (identity.crl_path) ::stat(identity.crl_path->c_str(), &store_->crl_stat);
  store_->store = load_store(identity);
}

KeyVerifier::~KeyVerifier() = default;

std::optional<std::string> KeyVerifier::check(const std::string& expected_node,
                                              const std::string& cert_pem,
                                              const std::string& message,
                                              const std::string& signature) const {
  const std::string subject = "certificate of " + expected_node;
  if (cert_pem.size() > kMaxCertificatePemBytes) {
    return subject + " is " + std::to_string(cert_pem.size()) + " bytes, more than a certificate";
  }
  std::shared_ptr<X509> cert;
  std::shared_ptr<X509_STORE> store;
  {
    std::lock_guard<std::mutex> lock(store_->mutex);
    struct stat now {};
    if (store_->identity.crl_path && ::stat(store_->identity.crl_path->c_str(), &now) == 0 &&
        !same_file_state(now, store_->crl_stat)) {
      // A new CRL (a site was revoked): what chained before must chain again.
      store_->store = load_store(store_->identity);
      store_->crl_stat = now;
      store_->chained.clear();
    }
    store = store_->store;
    auto it = store_->chained.find(cert_pem);
    if (it != store_->chained.end() && X509_cmp_current_time(X509_get0_notAfter(it->second.get())) > 0) {
      cert = it->second;
    }
  }
  if (!cert) {
    secure::BioPtr bio(check_openssl(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())),
                                     "BIO_new_mem_buf"));
    cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (!cert) {
      ERR_clear_error();
      return subject + " is not a PEM certificate";
    }
    X509StoreCtxPtr context(check_openssl(X509_STORE_CTX_new(), "X509_STORE_CTX_new"));
    check_openssl(X509_STORE_CTX_init(context.get(), store.get(), cert.get(), nullptr), "X509_STORE_CTX_init");
    check_openssl(X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_ANY), "X509_STORE_CTX_set_purpose");
    if (X509_verify_cert(context.get()) != 1) {
      const int error = X509_STORE_CTX_get_error(context.get());
      ERR_clear_error();
      return subject + " does not verify against the federation CA: " + X509_verify_cert_error_string(error);
    }
    std::lock_guard<std::mutex> lock(store_->mutex);
    if (store_->chained.size() >= Store::kMaxChained) store_->chained.clear();
    store_->chained[cert_pem] = cert;
  }

  std::string why;
  const auto identity = secure::identity_of(cert.get(), &why);
  if (!identity) return subject + " is unusable: " + why;
  if (identity->node_id != expected_node) {
    return "certificate presented for " + expected_node + " names " + identity->node_id;
  }
  if (identity->role != secure::NodeRole::client) {
    return subject + " has role " + secure::role_name(identity->role) + ", not client";
  }

  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  EvpMdCtxPtr verify(check_openssl(EVP_MD_CTX_new(), "EVP_MD_CTX_new"));
  const bool signed_ok =
      key != nullptr &&
      EVP_DigestVerifyInit(verify.get(), nullptr, digest_for(key), nullptr, key) == 1 &&
      EVP_DigestVerify(verify.get(), bytes_of(signature), signature.size(), bytes_of(message),
                       message.size()) == 1;
  if (!signed_ok) {
    ERR_clear_error();
    return "signature of " + expected_node + " does not match its keys";
  }
  return std::nullopt;
}

}  // namespace cleave::secagg
