#include "simulate/fleet_pki.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "secure/ca.h"

namespace fs = std::filesystem;

namespace cleave::simulate {
namespace {

constexpr const char* kMarker = "THROWAWAY";
constexpr const char* kMarkerText =
    "cleave simulate: the throw-away certificate authority of one simulation run.\n"
    "Made fresh for the run, replaced by the next run into this directory; never\n"
    "use it for a deployment (see `cleave ca init`).\n";

// Clears `dir` for a new CA, deleting only what an earlier run left there.
void prepare(const std::string& dir) {
  if (fs::exists(dir)) {
    if (!fs::exists(fs::path(dir) / kMarker)) {
      throw std::runtime_error(dir + " exists and is not a simulation's throw-away CA (no " + kMarker +
                               " file): move it away or choose another output.dir");
    }
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
  std::ofstream marker(fs::path(dir) / kMarker, std::ios::trunc);
  marker << kMarkerText;
  if (!marker) throw std::runtime_error(dir + "/" + kMarker + ": cannot write");
}

}  // namespace

std::string fleet_pki_dir(const std::string& run_dir) { return (fs::path(run_dir) / "pki").string(); }

const secure::TlsIdentity& FleetPki::identity(const std::string& node) const {
  const auto it = nodes.find(node);
  if (it == nodes.end()) {
    throw std::invalid_argument("node '" + node + "' has no certificate in " + dir +
                                ": only the fleet's services and registered sites have one");
  }
  return it->second;
}

FleetPki read_fleet_pki(const std::string& dir, const std::vector<std::string>& site_ids) {
  FleetPki pki;
  pki.dir = dir;
  pki.ca_cert = dir + "/ca/ca.crt";
  for (const std::string& id : site_ids) {
    secure::TlsIdentity identity = secure::issued_identity(dir + "/nodes", id);
    identity.crl_path.reset();   // as issue_fleet_pki: nobody revokes in a throw-away CA
    if (!fs::exists(identity.cert_path) || !fs::exists(identity.key_path)) {
      throw std::runtime_error(identity.cert_path + " or its key is missing: the run's PKI in " + dir +
                               " must be on a file system every process of the run sees");
    }
    pki.nodes.emplace(id, identity);
  }
  return pki;
}

std::string split_hop_node(size_t hop) {
  return hop == 0 ? kSplitServerNode : std::string(kSplitServerNode) + "-" + std::to_string(hop + 1);
}

FleetPki issue_fleet_pki(const std::string& dir, const std::vector<std::string>& site_ids, size_t split_hops) {
  for (const std::string& id : site_ids) {
    if (id == kAggregatorNode || id == kSplitServerNode || id.rfind(std::string(kSplitServerNode) + "-", 0) == 0) {
      throw std::invalid_argument("site id '" + id + "' is also the name of a fleet service's certificate: "
                                  "rename the site (its data file)");
    }
    try {
      secure::validate_node_name(id);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("site id '" + id + "' cannot name its certificate: " + e.what());
    }
  }
  prepare(dir);
  FleetPki pki;
  pki.dir = dir;
  const std::string ca_dir = dir + "/ca";
  const std::string nodes_dir = dir + "/nodes";
  pki.ca_cert = secure::ca_init(ca_dir, "cleave-simulate-ca").cert_path;

  // Nobody needs these files after a crash: skip the disk flushes.
  secure::IssueOptions options;
  options.durable = false;
  auto add = [&](const std::vector<std::string>& names, const std::vector<secure::IssuedNode>& issued) {
    for (size_t i = 0; i < names.size(); ++i) {
      secure::TlsIdentity identity = issued[i].identity;
      identity.crl_path.reset();   // nobody revokes in a throw-away CA: no CRL to check
      pki.nodes.emplace(names[i], identity);
    }
  };
  add({kAggregatorNode},
      secure::ca_issue_many(ca_dir, secure::NodeRole::aggregator, {kAggregatorNode}, nodes_dir, options));
  if (split_hops > 0) {
    std::vector<std::string> hops;
    for (size_t k = 0; k < split_hops; ++k) hops.push_back(split_hop_node(k));
    add(hops, secure::ca_issue_many(ca_dir, secure::NodeRole::split_server, hops, nodes_dir, options));
  }
  add(site_ids, secure::ca_issue_many(ca_dir, secure::NodeRole::client, site_ids, nodes_dir, options));
  return pki;
}

}  // namespace cleave::simulate
