// Which authenticated peers may send what to a split server. TLS already
// admitted only the service's roles; this binds the ids in messages to the
// certificates: a site can speak only for itself, and only the aggregator may
// close a split server's round. Used by `cleave split-server`, the simulated
// fleet and the benches; the aggregator's own policy (aggregator/peer_policies.h)
// uses the same id check.
#pragma once

#include <optional>
#include <string>

#include "secure/service_channel.h"

namespace cleave::split {

// Clients send Hello/Forward/Backward and generation requests under their
// own certificate name; EndRound and SyncRound only from an aggregator.
// A later hop of a chain (`previous`: the certificate name of the split
// server that forwards to it) serves that split server alone, which relays
// the sites' requests under their ids and the aggregator's round closes;
// sites talk to the chain's first hop, not to it.
secure::PeerPolicy split_server_policy(const std::string& previous = "");

// The client id every client request starts with (Hello, StepKey, the
// generation requests, and the federation's Register, RoundRequest, Update);
// nullopt when the frame is too malformed to say (the service's own decoder
// then answers it with an error).
std::optional<std::string> leading_client_id(const net::Bytes& frame);

// Why `frame` may not come from `peer`: it claims another client's id;
// nullopt when it claims the peer's own (or says nothing decodable).
std::optional<std::string> claims_other_id(const secure::PeerIdentity& peer, const net::Bytes& frame);

}  // namespace cleave::split
