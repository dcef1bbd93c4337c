#include "secure/node_role.h"

#include <openssl/x509v3.h>

#include <cstring>
#include <stdexcept>

#include "secure/openssl_handles.h"

namespace cleave::secure {

std::string role_name(NodeRole role) {
  switch (role) {
    case NodeRole::client: return "client";
    case NodeRole::split_server: return "split-server";
    case NodeRole::aggregator: return "aggregator";
  }
  throw std::invalid_argument("unknown NodeRole value");
}

NodeRole parse_role(const std::string& name) {
  for (NodeRole role : {NodeRole::client, NodeRole::split_server, NodeRole::aggregator}) {
    if (role_name(role) == name) return role;
  }
  throw std::invalid_argument("unknown role '" + name +
                              "': expected one of client, split-server, aggregator");
}

std::string role_names(const std::set<NodeRole>& roles) {
  std::string text;
  for (NodeRole role : roles) {
    if (!text.empty()) text += ", ";
    text += role_name(role);
  }
  return text.empty() ? std::string("(none)") : text;
}

void validate_node_name(const std::string& name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  bool ok = !name.empty() && name.size() <= 64 && alnum(name.front());
  for (char c : name) ok = ok && (alnum(c) || c == '.' || c == '_' || c == '-');
  if (!ok) {
    throw std::invalid_argument("invalid node name '" + name +
                                "': use 1 to 64 characters from A-Z a-z 0-9 . _ -, "
                                "starting with a letter or digit");
  }
}

namespace {

std::optional<std::string> common_name(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return std::nullopt;
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return std::nullopt;
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  if (cn.find('\0') != std::string::npos) return std::nullopt;
  return cn;
}

}  // namespace

std::optional<PeerIdentity> identity_of(X509* cert, std::string* why) {
  auto fail = [why](const std::string& reason) {
    if (why) *why = reason;
    return std::optional<PeerIdentity>();
  };
  const auto cn = common_name(cert);
  if (!cn || cn->empty()) return fail("certificate has no subject CN (the node id)");

  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::optional<NodeRole> role;
  const size_t prefix_len = std::strlen(kRoleUriPrefix);
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    const std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                           static_cast<size_t>(ASN1_STRING_length(uri)));
    if (text.compare(0, prefix_len, kRoleUriPrefix) != 0) continue;
    if (role) return fail("certificate of '" + *cn + "' carries more than one role URI");
    try {
      role = parse_role(text.substr(prefix_len));
    } catch (const std::invalid_argument&) {
      return fail("certificate of '" + *cn + "' has unknown role URI " + text);
    }
  }
  if (!role) {
    return fail("certificate of '" + *cn + "' has no role (subjectAltName URI " +
                kRoleUriPrefix + "<role>): was it issued by cleave ca issue?");
  }
  return PeerIdentity{*cn, *role};
}

}  // namespace cleave::secure
