// cleave ca init | issue | revoke: the federation's certificate authority
// (secure/ca.h), for operators admitting and revoking nodes.
#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "secure/ca.h"

namespace cleave::cli {
namespace {

int days_flag(const ParsedArgs& args) {
  const int64_t days = args.get_int("--days");
  if (days < 1 || days > 36500) throw UsageError("--days must be in [1, 36500], got " + std::to_string(days));
  return static_cast<int>(days);
}

std::string with_mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return path;
  char mode[16];
  std::snprintf(mode, sizeof mode, " (mode %04o)", static_cast<unsigned>(st.st_mode & 07777));
  return path + mode;
}

}  // namespace

ArgParser ca_init_parser() {
  return ArgParser("cleave ca init", "--out DIR [--name NAME] [--days N] [--force]",
                   "Creates the federation's certificate authority in DIR: ca.key (EC P-256,\n"
                   "mode 0600: keep DIR offline, on the operator's machine), ca.crt (give it to\n"
                   "every node), crl.pem (the revocation list) and index.tsv (what was issued).\n"
                   "Refuses to overwrite an existing CA unless --force.")
      .value("--out", "DIR", "the CA directory to create")
      .value("--name", "NAME", "the CA certificate's name").defaults_to("cleave-federation-ca")
      .value("--days", "N", "validity in days").defaults_to(secure::kDefaultCaDays)
      .toggle("--force", "overwrite an existing CA (every certificate it issued stops working)");
}

int run_ca_init(const ParsedArgs& args) {
  const secure::CaPaths paths =
      secure::ca_init(args.require("--out"), args.require("--name"),
                      days_flag(args), args.get_switch("--force"));
  std::cout << "ca: created " << with_mode(paths.key_path) << "\n"
            << "ca: created " << with_mode(paths.cert_path) << "\n"
            << "ca: created " << with_mode(paths.crl_path) << "\n"
            << "ca: next: cleave ca issue --ca " << args.require("--out")
            << " --role aggregator|split-server|client --name NAME --out DIR\n";
  return 0;
}

ArgParser ca_issue_parser() {
  return ArgParser("cleave ca issue", "--ca DIR --role client|split-server|aggregator --name NAME --out DIR [--days N]",
                   "Issues a key and certificate for one node, signed by the CA in --ca: writes\n"
                   "NAME.key (mode 0600), NAME.crt, ca.crt and crl.pem into --out. The certificate\n"
                   "names the node (subject CN) and its role (SAN urn:cleave:role:ROLE); services\n"
                   "admit only the roles that may talk to them. Hand the --out directory to the\n"
                   "node's operator over a trusted channel.")
      .value("--ca", "DIR", "the CA directory (from cleave ca init)")
      .value("--role", "ROLE", "client (a hospital site), split-server or aggregator")
      .value("--name", "NAME", "the node's name: 1-64 of [A-Za-z0-9._-], e.g. site-a")
      .value("--out", "DIR", "where to write the node's files")
      .value("--days", "N", "validity in days").defaults_to(secure::kDefaultNodeDays)
      .toggle("--force", "overwrite the node's existing key and certificate");
}

int run_ca_issue(const ParsedArgs& args) {
  secure::NodeRole role;
  try {
    role = secure::parse_role(args.require("--role"));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--role: ") + e.what());
  }
  secure::IssueOptions options;
  options.days = days_flag(args);
  options.force = args.get_switch("--force");
  const secure::IssuedNode node =
      secure::ca_issue(args.require("--ca"), role, args.require("--name"), args.require("--out"), options);
  std::cout << "ca: issued " << secure::role_name(role) << " certificate for " << args.require("--name")
            << " (serial " << node.serial_hex << ", " << options.days << " days)\n"
            << "ca: wrote " << with_mode(node.identity.cert_path) << "\n"
            << "ca: wrote " << with_mode(node.identity.key_path) << "\n"
            << "ca: wrote " << with_mode(node.identity.ca_path) << "\n";
  if (node.identity.crl_path) std::cout << "ca: wrote " << with_mode(*node.identity.crl_path) << "\n";
  return 0;
}

ArgParser ca_revoke_parser() {
  return ArgParser("cleave ca revoke", "--ca DIR --cert FILE",
                   "Revokes a node's certificate: adds its serial to the CA's crl.pem and\n"
                   "re-signs it. Copy the new crl.pem over each service's secure.crl file: a\n"
                   "running service re-reads it within a second, drops the revoked node's\n"
                   "sessions and refuses its handshakes from then on.")
      .value("--ca", "DIR", "the CA directory")
      .value("--cert", "FILE", "the certificate to revoke (NAME.crt, as issued)");
}

int run_ca_revoke(const ParsedArgs& args) {
  const secure::Revocation revocation = secure::ca_revoke(args.require("--ca"), args.require("--cert"));
  std::cout << "ca: " << (revocation.already_revoked ? "already revoked " : "revoked ") << revocation.node_id
            << " (serial " << revocation.serial_hex << "); new CRL "
            << secure::ca_paths(args.require("--ca")).crl_path << "\n";
  return 0;
}

ArgParser ca_refresh_crl_parser() {
  return ArgParser("cleave ca refresh-crl", "--ca DIR [--days N]",
                   "Re-signs the CA's crl.pem with a fresh validity, revoking nothing new.\n"
                   "Services refuse every peer once the CRL they check has expired, so run this\n"
                   "(and hand out the new crl.pem) before it lapses.")
      .value("--ca", "DIR", "the CA directory")
      .value("--days", "N", "validity in days").defaults_to(secure::kDefaultCrlDays);
}

int run_ca_refresh_crl(const ParsedArgs& args) {
  const int days = days_flag(args);
  secure::ca_refresh_crl(args.require("--ca"), days);
  std::cout << "ca: re-signed " << secure::ca_paths(args.require("--ca")).crl_path << " for " << days
            << " days\n";
  return 0;
}

}  // namespace cleave::cli
