// Where a simulated fleet's roles listen and how they reach each other: the
// in-process transport or ZeroMQ on tcp://127.0.0.1 (port 0), with mutual
// TLS 1.3 on every channel under the run's throw-away certificates
// (simulate/fleet_pki.h), the same layer and peer policies as a deployment;
// plaintext only when the run is insecure, with a warning per endpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "secure/service_channel.h"
#include "simulate/fleet_pki.h"
#include "simulate/simulation_config.h"
#include "transport/inproc_channel.h"
#include "util/log.h"

namespace cleave::simulate {

class FleetNetwork {
 public:
  // `pki` null: plaintext (secure.insecure: true). `pki` must outlive the
  // network. TLS refusals and dropped sessions go to `log` as "tls: ..."
  // warnings, the plaintext warning without the prefix.
  FleetNetwork(FleetTransport transport, const FleetPki* pki, Log log, int64_t handshake_timeout_ms = 10000);

  bool encrypted() const { return pki_ != nullptr; }
  // TCP: services listen on every interface and their addresses name `host`
  // (a fleet whose ranks span machines); by default they listen on 127.0.0.1.
  void serve_on_host(const std::string& host) { service_host_ = host; }

  // Listens as service `node` (kAggregatorNode, kSplitServerNode) under its
  // certificate; only messages from peers `policy` admits come out of it.
  std::unique_ptr<net::ServerChannel> bind(const std::string& node, secure::PeerPolicy policy);
  // The address clients give connect() for a channel bind() returned.
  std::string address(const std::string& node, const net::ServerChannel& channel) const;

  // Node `node` (a site id, or the aggregator dialling the split server)
  // connects to service `server` at `address` under its own certificate; the
  // server's certificate must be `server`'s and hold its role. A refused or
  // failed TLS session surfaces as net::TransportError.
  std::unique_ptr<net::ClientChannel> connect(const std::string& node, const std::string& address,
                                              const std::string& server);
  // The same under any identity (e.g. a certificate of another CA, which the
  // services must refuse). With plaintext the identity is ignored.
  std::unique_ptr<net::ClientChannel> connect_as(const secure::TlsIdentity& identity, const std::string& address,
                                                 const std::string& server);

 private:
  secure::SecureChannelOptions tls_options(const secure::TlsIdentity& identity) const;
  std::unique_ptr<net::ClientChannel> connect_plain(const std::string& address);

  FleetTransport transport_;
  const FleetPki* pki_;
  Log log_;
  int64_t handshake_timeout_ms_;
  net::ChannelOptions channel_options_;
  net::InprocNetwork inproc_;
  std::string service_host_;   // "": 127.0.0.1 only
};

// The role a fleet service's certificate holds (aggregator, split server).
secure::NodeRole service_role(const std::string& server);

}  // namespace cleave::simulate
