#include "secure/ca.h"

#include <openssl/rand.h>

#include <ctime>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "secure/ca_internal.h"
#include "secure/pem_files.h"

namespace fs = std::filesystem;

namespace cleave::secure {

namespace {

constexpr int64_t kSecondsPerDay = 86400;

EvpPkeyPtr new_p256_key() {
  return EvpPkeyPtr(check_openssl(EVP_EC_gen("P-256"), "cannot generate an EC P-256 key"));
}

// A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
Asn1IntegerPtr random_serial() {
  unsigned char bytes[16];
  check_openssl(RAND_bytes(bytes, sizeof bytes), "RAND_bytes");
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;  // never zero, never negative
  BignumPtr number(check_openssl(BN_bin2bn(bytes, sizeof bytes, nullptr), "BN_bin2bn"));
  return Asn1IntegerPtr(
      check_openssl(BN_to_ASN1_INTEGER(number.get(), nullptr), "BN_to_ASN1_INTEGER"));
}

X509NamePtr subject_with_cn(const std::string& cn) {
  X509NamePtr name(check_openssl(X509_NAME_new(), "X509_NAME_new"));
  check_openssl(X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>("cleave"), -1,
                                           -1, 0),
                "X509_NAME_add_entry_by_txt(O)");
  check_openssl(X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(cn.c_str()),
                                           -1, -1, 0),
                "X509_NAME_add_entry_by_txt(CN)");
  return name;
}

// A certificate skeleton: version 3, serial, subject, validity, public key.
X509Ptr new_certificate(const std::string& cn, EVP_PKEY* key, int days, int64_t offset_s) {
  if (days < 1) {
    throw std::invalid_argument("validity of " + std::to_string(days) +
                                " days: use at least 1 (shift the window with "
                                "not_before_offset_s to make an expired test certificate)");
  }
  X509Ptr cert(check_openssl(X509_new(), "X509_new"));
  check_openssl(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
  Asn1IntegerPtr serial = random_serial();
  check_openssl(X509_set_serialNumber(cert.get(), serial.get()), "X509_set_serialNumber");
  X509NamePtr subject = subject_with_cn(cn);
  check_openssl(X509_set_subject_name(cert.get(), subject.get()), "X509_set_subject_name");
  time_t now = std::time(nullptr);
  check_openssl(X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, static_cast<long>(offset_s),
                                 &now),
                "setting notBefore");
  const int64_t after_s = offset_s + static_cast<int64_t>(days) * kSecondsPerDay;
  check_openssl(X509_time_adj_ex(X509_getm_notAfter(cert.get()),
                                 static_cast<int>(after_s / kSecondsPerDay),
                                 static_cast<long>(after_s % kSecondsPerDay), &now),
                "setting notAfter");
  check_openssl(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
  return cert;
}

void sign(X509* cert, EVP_PKEY* ca_key) {
  if (X509_sign(cert, ca_key, EVP_sha256()) <= 0) throw_openssl_error("X509_sign");
}

int64_t not_after_unix(X509* cert) {
  struct tm tm_after;
  check_openssl(ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm_after), "ASN1_TIME_to_tm");
  return static_cast<int64_t>(timegm(&tm_after));
}

// Copies a public CA file into a node directory. An existing copy is kept
// current (CRLs change) but a ca.crt from a different CA needs `force`.
void install_public_copy(const std::string& from, const std::string& to, bool must_match,
                         bool force, bool durable) {
  const std::string contents = read_file(from);
  if (file_exists(to) && must_match && !force && read_file(to) != contents) {
    throw std::runtime_error(to + " belongs to a different CA: use another output directory "
                                  "or pass force to replace it");
  }
  write_file(to, contents, kPublicFileMode, /*overwrite=*/true, durable);
}

}  // namespace

CaPaths ca_paths(const std::string& ca_dir) {
  const fs::path dir(ca_dir);
  return CaPaths{(dir / "ca.key").string(), (dir / "ca.crt").string(),
                 (dir / "crl.pem").string(), (dir / "index.tsv").string()};
}

CaPaths ca_init(const std::string& out_dir, const std::string& name, int days, bool force) {
  validate_node_name(name);
  const CaPaths paths = ca_paths(out_dir);
  if (!force) {
    for (const std::string& path : {paths.key_path, paths.cert_path, paths.crl_path,
                                    paths.index_path}) {
      if (file_exists(path)) {
        throw std::runtime_error(path + " already exists: " + out_dir +
                                 " holds a CA; pass force to replace it (this invalidates "
                                 "every certificate it issued)");
      }
    }
  }
  fs::create_directories(out_dir);

  EvpPkeyPtr key = new_p256_key();
  X509Ptr cert = new_certificate(name, key.get(), days, 0);
  check_openssl(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())),
                "X509_set_issuer_name");
  ca_detail::add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  ca_detail::add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  ca_detail::add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  sign(cert.get(), key.get());

  write_file(paths.key_path, private_key_pem(key.get()), kPrivateFileMode, force);
  write_file(paths.cert_path, certificate_pem(cert.get()), kPublicFileMode, force);
  ca_detail::write_index(out_dir, {});
  ca_detail::write_crl(out_dir, {}, kDefaultCrlDays);
  return paths;
}

IssuedNode ca_issue(const std::string& ca_dir, NodeRole role, const std::string& name,
                    const std::string& out_dir, const IssueOptions& options) {
  return ca_issue_many(ca_dir, role, {name}, out_dir, options).front();
}

TlsIdentity issued_identity(const std::string& out_dir, const std::string& name) {
  const fs::path dir(out_dir);
  TlsIdentity identity;
  identity.cert_path = (dir / (name + ".crt")).string();
  identity.key_path = (dir / (name + ".key")).string();
  identity.ca_path = (dir / "ca.crt").string();
  identity.crl_path = (dir / "crl.pem").string();
  return identity;
}

std::vector<IssuedNode> ca_issue_many(const std::string& ca_dir, NodeRole role,
                                      const std::vector<std::string>& names,
                                      const std::string& out_dir, const IssueOptions& options) {
  std::set<std::string> seen;
  for (const std::string& name : names) {
    validate_node_name(name);
    if (!seen.insert(name).second) {
      throw std::invalid_argument("node '" + name +
                                  "' is named twice: every node needs its own name");
    }
  }
  const CaPaths ca = ca_paths(ca_dir);
  EvpPkeyPtr ca_key = read_private_key(ca.key_path);
  X509Ptr ca_cert = read_certificate(ca.cert_path);
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    throw_openssl_error(ca.key_path + " does not match " + ca.cert_path);
  }

  std::vector<IssuedNode> issued(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const TlsIdentity& identity = issued[i].identity = issued_identity(out_dir, names[i]);
    if (options.force) continue;
    for (const std::string& path : {identity.cert_path, identity.key_path}) {
      if (file_exists(path)) {
        throw std::runtime_error(path + " already exists: node '" + names[i] +
                                 "' was issued before; revoke it and pass force to reissue");
      }
    }
  }
  fs::create_directories(out_dir);
  if (!names.empty()) {
    install_public_copy(ca.cert_path, issued.front().identity.ca_path, /*must_match=*/true,
                        options.force, options.durable);
    install_public_copy(ca.crl_path, *issued.front().identity.crl_path, /*must_match=*/false,
                        options.force, options.durable);
  }

  std::vector<IndexEntry> index = ca_index(ca_dir);
  X509* issuer = ca_cert.get();
  for (size_t i = 0; i < names.size(); ++i) {
    EvpPkeyPtr key = new_p256_key();
    X509Ptr cert = new_certificate(names[i], key.get(), options.days, options.not_before_offset_s);
    check_openssl(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)),
                  "X509_set_issuer_name");
    ca_detail::add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    ca_detail::add_extension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
    ca_detail::add_extension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    ca_detail::add_extension(cert.get(), issuer, NID_subject_alt_name,
                             std::string("URI:") + kRoleUriPrefix + role_name(role));
    ca_detail::add_extension(cert.get(), issuer, NID_subject_key_identifier, "hash");
    ca_detail::add_extension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
    sign(cert.get(), ca_key.get());

    const TlsIdentity& identity = issued[i].identity;
    write_file(identity.key_path, private_key_pem(key.get()), kPrivateFileMode, options.force,
               options.durable);
    write_file(identity.cert_path, certificate_pem(cert.get()), kPublicFileMode, options.force,
               options.durable);
    issued[i].serial_hex = ca_detail::serial_hex(X509_get0_serialNumber(cert.get()));
    index.push_back(IndexEntry{issued[i].serial_hex, role, names[i], not_after_unix(cert.get()),
                               false, 0});
  }
  ca_detail::write_index(ca_dir, index, options.durable);
  return issued;
}

}  // namespace cleave::secure
