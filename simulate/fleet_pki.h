// The throw-away certificate authority of one simulated fleet run, so that a
// simulation's channels are mutual TLS 1.3 like a deployment's:
//   <run>/pki/ca/           ca.key (0600), ca.crt, crl.pem, index.tsv
//   <run>/pki/nodes/        aggregator, split-server and one certificate per
//                           site (named by its site id), keys 0600
//   <run>/pki/THROWAWAY     says what this is
// Made fresh for every run (the next run into the same directory replaces
// it); nothing here is meant for a deployment (`cleave ca` is).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "secure/tls_identity.h"

namespace cleave::simulate {

// Node names of the fleet's services (their certificates' CNs).
inline constexpr const char* kAggregatorNode = "aggregator";
inline constexpr const char* kSplitServerNode = "split-server";
// Hop `hop` of a chain of split servers: split-server (the first), then
// split-server-2, split-server-3, ...
std::string split_hop_node(size_t hop);

struct FleetPki {
  std::string dir;                                      // <run>/pki
  std::string ca_cert;                                  // <run>/pki/ca/ca.crt
  std::map<std::string, secure::TlsIdentity> nodes;     // by node name: services and site ids

  // Throws std::invalid_argument when `node` has no certificate here.
  const secure::TlsIdentity& identity(const std::string& node) const;
};

// Where a run's throw-away CA lives: <run_dir>/pki.
std::string fleet_pki_dir(const std::string& run_dir);

// Creates the CA in `dir` and issues the aggregator's certificate, one per
// split server of a chain of `split_hops` (0: none) and one client
// certificate per site id. A `dir`
// left by an earlier run is replaced; any other existing `dir` is refused
// (std::runtime_error), never deleted. Throws std::invalid_argument when a
// site id cannot name a certificate or is a service's name.
FleetPki issue_fleet_pki(const std::string& dir, const std::vector<std::string>& site_ids, size_t split_hops);

// The sites' identities of a PKI issue_fleet_pki made in `dir` (another
// process of the run reads them: simulate/fleet_ranks.h). Throws
// std::runtime_error naming a missing certificate.
FleetPki read_fleet_pki(const std::string& dir, const std::vector<std::string>& site_ids);

}  // namespace cleave::simulate
