// Reading and writing the PEM files of keys, certificates and CRLs, with the
// file modes the federation relies on (private keys 0600, public files 0644).
#pragma once

#include <sys/types.h>

#include <string>

#include "secure/openssl_handles.h"

namespace cleave::secure {

inline constexpr mode_t kPrivateFileMode = 0600;
inline constexpr mode_t kPublicFileMode = 0644;

// Writes `data` to `path` with exactly `mode` (umask does not apply) from the
// moment the file exists, through the one atomic writer (util/atomic_file.h):
// readers never see half a file. Without `overwrite` an existing file is an
// error and stays as it was. `durable` syncs the file and its directory; only
// files nobody needs after a crash (a simulation's throw-away CA) may skip it.
void write_file(const std::string& path, const std::string& data, mode_t mode, bool overwrite,
                bool durable = true);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

EvpPkeyPtr read_private_key(const std::string& path);
X509Ptr read_certificate(const std::string& path);
X509CrlPtr read_crl(const std::string& path);

std::string private_key_pem(EVP_PKEY* key);
std::string certificate_pem(X509* cert);
std::string crl_pem(X509_CRL* crl);

}  // namespace cleave::secure
