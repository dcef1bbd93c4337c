// The files a node needs to take part in the federation's TLS.
#pragma once

#include <optional>
#include <string>

namespace cleave::secure {

struct TlsIdentity {
  std::string cert_path;  // this node's certificate (PEM), issued by `cleave ca issue`
  std::string key_path;   // its private key (PEM, mode 0600)
  std::string ca_path;    // the federation CA certificate peers must chain to
  // The CA's revocation list; when set, every peer certificate is checked
  // against it (X509_V_FLAG_CRL_CHECK) and the file is re-read when it changes.
  std::optional<std::string> crl_path;
};

}  // namespace cleave::secure
