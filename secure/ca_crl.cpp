// Revocation and the index of issued certificates.
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "secure/ca.h"
#include "secure/ca_internal.h"
#include "secure/pem_files.h"

namespace cleave::secure {

namespace {

constexpr const char* kIndexMagic = "# cleave-ca-index";
constexpr int kIndexVersion = 1;

}  // namespace

namespace ca_detail {

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr extension(check_openssl(
      X509V3_EXT_nconf_nid(nullptr, &context, nid, value.c_str()),
      std::string("cannot build extension ") + OBJ_nid2sn(nid) + " = " + value));
  check_openssl(X509_add_ext(cert, extension.get(), -1), "X509_add_ext");
}

std::string serial_hex(const ASN1_INTEGER* serial) {
  BignumPtr number(check_openssl(ASN1_INTEGER_to_BN(serial, nullptr), "ASN1_INTEGER_to_BN"));
  char* hex = check_openssl(BN_bn2hex(number.get()), "BN_bn2hex");
  std::string text(hex);
  OPENSSL_free(hex);
  return text;
}

void write_index(const std::string& ca_dir, const std::vector<IndexEntry>& entries,
                 bool durable) {
  std::ostringstream out;
  out << kIndexMagic << ' ' << kIndexVersion << '\n'
      << "# serial\trole\tname\tnot_after_unix\tstatus\trevoked_at_unix\n";
  for (const IndexEntry& e : entries) {
    out << e.serial_hex << '\t' << role_name(e.role) << '\t' << e.name << '\t' << e.not_after_unix
        << '\t' << (e.revoked ? "revoked" : "valid") << '\t' << e.revoked_at_unix << '\n';
  }
  write_file(ca_paths(ca_dir).index_path, out.str(), kPublicFileMode, /*overwrite=*/true,
             durable);
}

void write_crl(const std::string& ca_dir, const std::vector<IndexEntry>& entries, int days) {
  if (days < 1) throw std::invalid_argument("CRL validity must be at least 1 day");
  const CaPaths ca = ca_paths(ca_dir);
  EvpPkeyPtr ca_key = read_private_key(ca.key_path);
  X509Ptr ca_cert = read_certificate(ca.cert_path);

  long number = 1;
  if (file_exists(ca.crl_path)) {
    X509CrlPtr previous = read_crl(ca.crl_path);
    Asn1IntegerPtr old_number(static_cast<ASN1_INTEGER*>(
        X509_CRL_get_ext_d2i(previous.get(), NID_crl_number, nullptr, nullptr)));
    if (old_number) number = ASN1_INTEGER_get(old_number.get()) + 1;
  }

  X509CrlPtr crl(check_openssl(X509_CRL_new(), "X509_CRL_new"));
  check_openssl(X509_CRL_set_version(crl.get(), 1), "X509_CRL_set_version");  // v2
  check_openssl(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert.get())),
                "X509_CRL_set_issuer_name");
  time_t now = std::time(nullptr);
  Asn1TimePtr this_update(check_openssl(X509_time_adj_ex(nullptr, 0, 0, &now), "time"));
  Asn1TimePtr next_update(check_openssl(X509_time_adj_ex(nullptr, days, 0, &now), "time"));
  check_openssl(X509_CRL_set1_lastUpdate(crl.get(), this_update.get()), "lastUpdate");
  check_openssl(X509_CRL_set1_nextUpdate(crl.get(), next_update.get()), "nextUpdate");

  for (const IndexEntry& e : entries) {
    if (!e.revoked) continue;
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, e.serial_hex.c_str()) == 0) {
      throw std::runtime_error("index entry for '" + e.name + "' has a malformed serial " +
                               e.serial_hex);
    }
    BignumPtr serial_number(raw);
    Asn1IntegerPtr serial(check_openssl(BN_to_ASN1_INTEGER(serial_number.get(), nullptr), "BN"));
    time_t revoked_at = static_cast<time_t>(e.revoked_at_unix);
    Asn1TimePtr when(check_openssl(X509_time_adj_ex(nullptr, 0, 0, &revoked_at), "time"));
    X509RevokedPtr revoked(check_openssl(X509_REVOKED_new(), "X509_REVOKED_new"));
    check_openssl(X509_REVOKED_set_serialNumber(revoked.get(), serial.get()), "revoked serial");
    check_openssl(X509_REVOKED_set_revocationDate(revoked.get(), when.get()), "revoked date");
    check_openssl(X509_CRL_add0_revoked(crl.get(), revoked.get()), "X509_CRL_add0_revoked");
    revoked.release();  // now owned by the CRL
  }

  Asn1IntegerPtr crl_number(check_openssl(ASN1_INTEGER_new(), "ASN1_INTEGER_new"));
  check_openssl(ASN1_INTEGER_set(crl_number.get(), number), "ASN1_INTEGER_set");
  check_openssl(X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, crl_number.get(), 0, 0),
                "crlNumber");
  X509V3_CTX context;
  X509V3_set_ctx(&context, ca_cert.get(), nullptr, nullptr, crl.get(), 0);
  X509ExtensionPtr authority_key(check_openssl(
      X509V3_EXT_nconf_nid(nullptr, &context, NID_authority_key_identifier, "keyid:always"),
      "authorityKeyIdentifier for the CRL"));
  check_openssl(X509_CRL_add_ext(crl.get(), authority_key.get(), -1), "X509_CRL_add_ext");
  check_openssl(X509_CRL_sort(crl.get()), "X509_CRL_sort");
  if (X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) <= 0) throw_openssl_error("X509_CRL_sign");
  write_file(ca.crl_path, crl_pem(crl.get()), kPublicFileMode, /*overwrite=*/true);
}

}  // namespace ca_detail

std::vector<IndexEntry> ca_index(const std::string& ca_dir) {
  const std::string path = ca_paths(ca_dir).index_path;
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);
  const std::string expected = std::string(kIndexMagic) + ' ' + std::to_string(kIndexVersion);
  if (line != expected) {
    throw std::runtime_error(path + " starts with '" + line + "', expected '" + expected +
                             "': is " + ca_dir + " a cleave CA directory of this version?");
  }
  std::vector<IndexEntry> entries;
  int line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    IndexEntry e;
    std::string role, status;
    if (!std::getline(fields, e.serial_hex, '\t') || !std::getline(fields, role, '\t') ||
        !std::getline(fields, e.name, '\t') || !(fields >> e.not_after_unix) ||
        !(fields >> status) || !(fields >> e.revoked_at_unix) ||
        (status != "valid" && status != "revoked")) {
      throw std::runtime_error(path + ":" + std::to_string(line_number) +
                               ": malformed index line; expected serial, role, name, "
                               "not_after_unix, valid|revoked, revoked_at_unix separated by tabs");
    }
    e.role = parse_role(role);
    e.revoked = status == "revoked";
    entries.push_back(e);
  }
  return entries;
}

Revocation ca_revoke(const std::string& ca_dir, const std::string& cert_path) {
  const CaPaths ca = ca_paths(ca_dir);
  X509Ptr ca_cert = read_certificate(ca.cert_path);
  X509Ptr cert = read_certificate(cert_path);
  EVP_PKEY* ca_public = X509_get0_pubkey(ca_cert.get());
  if (X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca_cert.get())) != 0 ||
      ca_public == nullptr || X509_verify(cert.get(), ca_public) != 1) {
    drain_openssl_errors();
    throw std::runtime_error(cert_path + " was not issued by the CA in " + ca_dir +
                             ": revoke it with the CA that signed it");
  }

  Revocation result;
  result.serial_hex = ca_detail::serial_hex(X509_get0_serialNumber(cert.get()));
  std::string why;
  const auto identity = identity_of(cert.get(), &why);
  result.node_id = identity ? identity->node_id : std::string("?");

  std::vector<IndexEntry> entries = ca_index(ca_dir);
  IndexEntry* entry = nullptr;
  for (IndexEntry& e : entries) {
    if (e.serial_hex == result.serial_hex) entry = &e;
  }
  if (entry == nullptr) {
    // Signed by this CA but missing from the index (e.g. an index restored
    // from an old backup): record it so the CRL, built from the index, lists it.
    if (!identity) throw std::runtime_error("cannot revoke " + cert_path + ": " + why);
    entries.push_back(IndexEntry{result.serial_hex, identity->role, identity->node_id, 0, false, 0});
    entry = &entries.back();
  }
  result.already_revoked = entry->revoked;
  if (!entry->revoked) {
    entry->revoked = true;
    entry->revoked_at_unix = static_cast<int64_t>(std::time(nullptr));
  }
  ca_detail::write_index(ca_dir, entries);
  ca_detail::write_crl(ca_dir, entries, kDefaultCrlDays);
  return result;
}

void ca_refresh_crl(const std::string& ca_dir, int days) {
  ca_detail::write_crl(ca_dir, ca_index(ca_dir), days);
}

}  // namespace cleave::secure
