#include "secure/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "secure/pem_files.h"

namespace cleave::secure {

namespace {

bool same_file_state(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

std::string subject_of(X509* cert) {
  if (cert == nullptr) return "(no certificate)";
  char line[256];
  X509_NAME_oneline(X509_get_subject_name(cert), line, sizeof line);
  return line;
}

}  // namespace

// Runs for every certificate of the peer's chain. OpenSSL's own checks
// (chain to our CA, validity dates, CRL, key usage) arrive as preverify_ok;
// on the peer's own certificate (depth 0) we add the cleave checks: it must
// name a node and carry an admitted role.
int verify_peer_certificate(int preverify_ok, X509_STORE_CTX* store) {
  SSL* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* context = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* note = static_cast<VerifyNote*>(SSL_get_app_data(ssl));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  const int depth = X509_STORE_CTX_get_error_depth(store);
  auto refuse = [&](const std::string& why, const char* reason) {
    if (note && note->refusal.empty()) {
      note->refusal = "certificate " + subject_of(cert) + " (chain depth " +
                      std::to_string(depth) + ") refused: " + why;
      note->reason = reason;
    }
    return 0;
  };
  if (!preverify_ok) {
    const int error = X509_STORE_CTX_get_error(store);
    const char* reason = error == X509_V_ERR_CERT_REVOKED ? "revoked"
                         : error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID
                             ? "expired"
                             : "untrusted";
    return refuse(X509_verify_cert_error_string(error), reason);
  }
  if (depth != 0) return 1;

  std::string why;
  const auto identity = identity_of(cert, &why);
  const SecureChannelOptions& options = context->options();
  if (!identity) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return refuse(why, "not_a_node");
  }
  if (!options.allowed_peer_roles.count(identity->role)) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return refuse("role " + role_name(identity->role) + " of node '" + identity->node_id +
                  "' may not connect here (admitted: " + role_names(options.allowed_peer_roles) +
                  ")",
                  "role");
  }
  if (options.expected_peer_name && identity->node_id != *options.expected_peer_name) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return refuse("node is '" + identity->node_id + "', expected '" + *options.expected_peer_name + "'", "name");
  }
  return 1;
}

TlsContext::TlsContext(Side side, const SecureChannelOptions& options)
    : side_(side), options_(options) {
  options_.validate();
  ctx_.reset(check_openssl(SSL_CTX_new(TLS_method()), "SSL_CTX_new"));
  SSL_CTX* ctx = ctx_.get();
  check_openssl(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), "TLS 1.3 minimum");
  check_openssl(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), "TLS 1.3 maximum");
  // No resumption: every session authenticates with certificates, and no
  // post-handshake tickets arrive after the handshake.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  check_openssl(SSL_CTX_set_num_tickets(ctx, 0), "SSL_CTX_set_num_tickets");
  // AES-128-GCM first: as safe for this use and ~30% cheaper per byte than
  // AES-256-GCM, which matters for megabyte activations.
  check_openssl(SSL_CTX_set_ciphersuites(
                    ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"),
                "SSL_CTX_set_ciphersuites");

  const TlsIdentity& id = options_.identity;
  check_openssl(SSL_CTX_use_certificate_chain_file(ctx, id.cert_path.c_str()),
                "cannot load the certificate " + id.cert_path);
  check_openssl(SSL_CTX_use_PrivateKey_file(ctx, id.key_path.c_str(), SSL_FILETYPE_PEM),
                "cannot load the private key " + id.key_path);
  check_openssl(SSL_CTX_check_private_key(ctx),
                id.key_path + " is not the key of " + id.cert_path);

  const int mode =
      SSL_VERIFY_PEER | (side == Side::server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_CTX_set_verify(ctx, mode, verify_peer_certificate);
  SSL_CTX_set_app_data(ctx, this);
  load_store();
  SSL_CTX_set1_cert_store(ctx, store_.get());
}

void TlsContext::load_store() {
  const TlsIdentity& id = options_.identity;
  X509StorePtr store(check_openssl(X509_STORE_new(), "X509_STORE_new"));
  X509Ptr ca = read_certificate(id.ca_path);
  check_openssl(X509_STORE_add_cert(store.get(), ca.get()), "cannot trust " + id.ca_path);
  X509CrlPtr crl;
  struct stat crl_stat {};
  if (id.crl_path) {
    if (::stat(id.crl_path->c_str(), &crl_stat) != 0) {
      throw std::runtime_error("cannot read the CRL " + *id.crl_path);
    }
    crl = read_crl(*id.crl_path);
    check_openssl(X509_STORE_add_crl(store.get(), crl.get()), "cannot use " + *id.crl_path);
    check_openssl(X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK), "CRL_CHECK");
  }
  store_ = std::move(store);
  crl_ = std::move(crl);
  crl_stat_ = crl_stat;
}

SslPtr TlsContext::new_ssl(VerifyNote* note) {
  reload_crl_if_changed();
  SslPtr ssl(check_openssl(SSL_new(ctx_.get()), "SSL_new"));
  check_openssl(SSL_set1_verify_cert_store(ssl.get(), store_.get()), "verify store");
  SSL_set_app_data(ssl.get(), note);
  if (side_ == Side::server) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  return ssl;
}

bool TlsContext::reload_crl_if_changed() {
  const auto& crl_path = options_.identity.crl_path;
  if (!crl_path) return false;
  struct stat now {};
  if (::stat(crl_path->c_str(), &now) != 0 || same_file_state(now, crl_stat_)) return false;
  try {
    load_store();
  } catch (const std::exception& error) {
    // Keep the old list: a half-copied CRL must not lock everyone out.
    options_.log.warning(std::string("keeping the previous CRL: ") + error.what());
    crl_stat_ = now;
    return false;
  }
  options_.log.info("reloaded CRL " + *crl_path);
  return true;
}

bool TlsContext::is_revoked(X509* cert) const {
  X509_REVOKED* entry = nullptr;
  return crl_ && cert && X509_CRL_get0_by_cert(crl_.get(), &entry, cert) == 1;
}

}  // namespace cleave::secure
