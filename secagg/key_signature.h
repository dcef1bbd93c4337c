// Signatures over a site's per-round public keys, made with the private key of
// its federation certificate (the TLS identity) and checked by its peers
// against the federation CA, so an aggregator that swaps keys in transit is
// detected (Bonawitz et al.'s active-adversary variant).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "secure/tls_identity.h"

namespace cleave::secagg {

// Signs with a node's certificate key (ECDSA P-256 / SHA-256 for keys from
// `cleave ca issue`; any EVP key type works).
class KeySigner {
 public:
  // Reads identity.cert_path and identity.key_path; throws std::runtime_error
  // naming the file that cannot be read or does not hold a key/certificate.
  explicit KeySigner(const secure::TlsIdentity& identity);
  ~KeySigner();
  KeySigner(const KeySigner&) = delete;
  KeySigner& operator=(const KeySigner&) = delete;

  const std::string& certificate_pem() const { return cert_pem_; }
  std::string sign(const std::string& message) const;

 private:
  struct Key;
  std::unique_ptr<Key> key_;
  std::string cert_pem_;
};

// Checks a peer's certificate against the federation CA (and CRL when given)
// and its signature over a message. Certificates that chained once are
// remembered (while valid), so checking the same peers every round costs a
// signature check each. A CRL file that changes is read again (and the
// remembered certificates forgotten). Thread-safe.
class KeyVerifier {
 public:
  // Reads identity.ca_path (and crl_path when set); throws std::runtime_error naming the file.
  explicit KeyVerifier(const secure::TlsIdentity& identity);
  ~KeyVerifier();
  KeyVerifier(const KeyVerifier&) = delete;
  KeyVerifier& operator=(const KeyVerifier&) = delete;

  // nullopt when `cert_pem` chains to the CA, is not revoked, names
  // `expected_node` as its CN with the client role, and `signature` is its
  // key's signature over `message`; otherwise why not ("certificate of site-b
  // is not signed by the federation CA", "signature of site-b does not match
  // its keys").
  std::optional<std::string> check(const std::string& expected_node, const std::string& cert_pem,
                                   const std::string& message, const std::string& signature) const;

 private:
  struct Store;
  std::unique_ptr<Store> store_;
};

}  // namespace cleave::secagg
