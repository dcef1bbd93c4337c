// The roles a federation node can hold, and how a certificate carries them.
//
// Certificates name the node in the subject CN (e.g. "site-a") and its role
// in a subjectAltName URI "urn:cleave:role:<role>" (e.g.
// "urn:cleave:role:split-server"). A SAN URI rather than the subject OU: it
// is a single typed value, and verifiers that do not know it ignore it.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <set>
#include <string>

namespace cleave::secure {

enum class NodeRole { client, split_server, aggregator };

inline constexpr const char* kRoleUriPrefix = "urn:cleave:role:";

// "client", "split-server", "aggregator".
std::string role_name(NodeRole role);
// Inverse of role_name; throws std::invalid_argument naming the three roles.
NodeRole parse_role(const std::string& name);
std::string role_names(const std::set<NodeRole>& roles);  // "client, aggregator"

// Node names become certificate CNs and file names: 1 to 64 characters from
// [A-Za-z0-9._-], starting with a letter or digit. Throws std::invalid_argument.
void validate_node_name(const std::string& name);

// Who a certificate says its holder is.
struct PeerIdentity {
  std::string node_id;  // subject CN
  NodeRole role;
};

// The CN and role of `cert`; nullopt (with the reason in `why`) when the
// certificate lacks a CN, a role URI, or has more than one role URI.
std::optional<PeerIdentity> identity_of(X509* cert, std::string* why = nullptr);

}  // namespace cleave::secure
