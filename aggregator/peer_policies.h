// Which authenticated peers may send what to each service. TLS already
// admitted only the service's roles; these checks bind the ids in messages
// to the certificates: a site can speak only for itself, and only the
// aggregator may close a split server's round. Used by the deployable
// services (cli/) and the simulated fleet (simulate/) alike; they live here
// because aggregator/ is the layer that knows both the federation and the
// split messages, and sits on secure/.
#pragma once

#include <optional>
#include <string>

#include "secure/service_channel.h"

namespace cleave::aggregator {

// Clients send Hello/Forward/Backward under their own certificate name;
// EndRound only from an aggregator.
secure::PeerPolicy split_server_policy();

// Sites register, poll and send updates under their own certificate name.
secure::PeerPolicy aggregator_policy();

// The client id every client request starts with (Hello, StepKey, Register,
// RoundRequest, Update); nullopt when the frame is too malformed to say
// (the service's own decoder then answers it with an error).
std::optional<std::string> leading_client_id(const net::Bytes& frame);

}  // namespace cleave::aggregator
