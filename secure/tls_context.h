// One side's TLS 1.3 configuration: its certificate and key, the federation
// CA (and CRL) peers must chain to, and the roles it admits.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>

#include "secure/node_role.h"
#include "secure/openssl_handles.h"
#include "secure/tls_options.h"

namespace cleave::secure {

// What the certificate check learned about one peer; each SSL carries one
// (SSL app data) for the verify callback to fill in.
struct VerifyNote {
  std::string peer_label;  // "peer 0x1a2b" or "tcp://host:port", for logs
  std::string refusal;     // why the peer's certificate was refused, if it was
  // The refusal's class, a metrics label: expired, revoked, untrusted (any
  // other failed chain check), not_a_node, role, name.
  std::string reason;
};

class TlsContext {
 public:
  enum class Side { client, server };

  // Loads and checks the identity files; throws std::runtime_error saying
  // which file is wrong.
  TlsContext(Side side, const SecureChannelOptions& options);
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A fresh SSL in connect or accept state, verifying against the current
  // CA/CRL store, with `note` attached for the verify callback.
  SslPtr new_ssl(VerifyNote* note);

  // Re-reads the CRL file if it changed since the last look; true if it did.
  bool reload_crl_if_changed();
  // True when the current CRL lists `cert` (always false without a CRL).
  bool is_revoked(X509* cert) const;

  Side side() const { return side_; }
  const SecureChannelOptions& options() const { return options_; }

 private:
  friend int verify_peer_certificate(int preverify_ok, X509_STORE_CTX* store);
  // Reads the CA and CRL files into a new store; commits nothing on failure.
  void load_store();

  Side side_;
  SecureChannelOptions options_;
  SslCtxPtr ctx_;
  X509StorePtr store_;  // CA (+ CRL), shared with every SSL made since the last reload
  X509CrlPtr crl_;
  struct stat crl_stat_ {};
};

}  // namespace cleave::secure
