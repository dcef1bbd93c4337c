// Pieces shared by ca.cpp (init, issue) and ca_crl.cpp (revocation, index).
#pragma once

#include <string>
#include <vector>

#include "secure/ca.h"
#include "secure/openssl_handles.h"

namespace cleave::secure::ca_detail {

// Adds one X.509v3 extension written in openssl.cnf syntax ("critical,CA:TRUE").
void add_extension(X509* cert, X509* issuer, int nid, const std::string& value);

std::string serial_hex(const ASN1_INTEGER* serial);

// Builds the CRL from the revoked index entries, signs it with the CA key and
// writes crl.pem (nextUpdate = now + days; crlNumber one above the old CRL's).
void write_crl(const std::string& ca_dir, const std::vector<IndexEntry>& entries, int days);

void write_index(const std::string& ca_dir, const std::vector<IndexEntry>& entries,
                 bool durable = true);

}  // namespace cleave::secure::ca_detail
