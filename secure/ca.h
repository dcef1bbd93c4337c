// Federation certificate authority: the provisioning library behind
// `cleave ca init|issue|revoke`.
//
// A CA directory holds
//   ca.key     EC P-256 private key, mode 0600 (unencrypted: keep the directory offline)
//   ca.crt     self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign, cRLSign)
//   crl.pem    the revocation list, re-signed on every revocation
//   index.tsv  every certificate issued, with its serial and status
// A node directory written by ca_issue holds <name>.key (0600), <name>.crt,
// and copies of ca.crt and crl.pem (0644). Node certificates carry the node
// name as subject CN and the role as SAN URI urn:cleave:role:<role>
// (see secure/node_role.h). One operator at a time: the CA files are not locked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "secure/node_role.h"
#include "secure/tls_identity.h"

namespace cleave::secure {

inline constexpr int kDefaultCaDays = 3650;
inline constexpr int kDefaultNodeDays = 365;
inline constexpr int kDefaultCrlDays = 365;

struct CaPaths {
  std::string key_path, cert_path, crl_path, index_path;
};
CaPaths ca_paths(const std::string& ca_dir);

// Creates `out_dir` (if needed) with a new CA key, certificate valid for `days`
// and an empty CRL. Refuses to overwrite an existing CA unless `force`.
CaPaths ca_init(const std::string& out_dir, const std::string& name, int days = kDefaultCaDays,
                bool force = false);

struct IssueOptions {
  int days = kDefaultNodeDays;  // validity length, at least 1
  // Shifts the validity window: notBefore = now + offset, notAfter =
  // notBefore + days. Meant for tests and drills: an offset of -2 days with
  // days = 1 yields a certificate that expired yesterday, which every
  // verifier must refuse. Production issuance leaves it at 0.
  int64_t not_before_offset_s = 0;
  bool force = false;  // overwrite an existing <name>.key / <name>.crt
  // Sync every file to disk as it is written. A throw-away CA (a simulation's,
  // replaced by the next run) may skip it: issuing a thousand nodes then costs
  // key generation and signing, not thousands of disk flushes.
  bool durable = true;
};

// Where ca_issue writes node `name`'s files in `out_dir`: <name>.crt,
// <name>.key, ca.crt and crl.pem (another process reads them from there).
TlsIdentity issued_identity(const std::string& out_dir, const std::string& name);

struct IssuedNode {
  TlsIdentity identity;  // cert, key, ca.crt and crl.pem in the node directory
  std::string serial_hex;
};

// Issues a key and certificate for node `name` with `role`, signed by the CA
// in `ca_dir`, into `out_dir` (created if needed), and records it in the index.
IssuedNode ca_issue(const std::string& ca_dir, NodeRole role, const std::string& name,
                    const std::string& out_dir, const IssueOptions& options = {});

// ca_issue for many nodes of one role into one directory: the CA is read once
// and the index written once. Results follow the order of `names`; a name
// given twice is refused before anything is written.
std::vector<IssuedNode> ca_issue_many(const std::string& ca_dir, NodeRole role,
                                      const std::vector<std::string>& names,
                                      const std::string& out_dir, const IssueOptions& options = {});

struct Revocation {
  std::string serial_hex;
  std::string node_id;
  bool already_revoked = false;  // the CRL was re-signed anyway
};

// Adds the serial of the certificate at `cert_path` (which must have been
// signed by this CA) to the CRL and re-signs it. Nodes pick the new crl.pem
// up when their copy of the file changes.
Revocation ca_revoke(const std::string& ca_dir, const std::string& cert_path);

// Re-signs the CRL with a fresh nextUpdate (now + days) without changing it;
// verifiers refuse an expired CRL, so run this before it lapses.
void ca_refresh_crl(const std::string& ca_dir, int days = kDefaultCrlDays);

struct IndexEntry {
  std::string serial_hex;
  NodeRole role;
  std::string name;
  int64_t not_after_unix = 0;
  bool revoked = false;
  int64_t revoked_at_unix = 0;
};
std::vector<IndexEntry> ca_index(const std::string& ca_dir);

}  // namespace cleave::secure
