// ZeroMQ channels: the server is a ROUTER socket, each client a DEALER. One
// channel message is one ZeroMQ message (the ROUTER adds and strips the
// routing frame that becomes the PeerId).
//
// Endpoints are ZeroMQ addresses: "tcp://127.0.0.1:5555", "tcp://*:0" (any free
// port; endpoint() tells which), "ipc:///tmp/cleave.sock".
//
// As for every channel, one object is used from one thread at a time.
// ServerChannel::send throws PeerUnreachable for a peer that is not connected
// (ZMQ_ROUTER_MANDATORY) and PeerNotReading, without waiting, when that
// peer's queue holds ChannelOptions.peer_queue_messages unsent messages (a
// peer that never reads cannot stall the server).
// Both ends set ZMQ_MAXMSGSIZE: a peer sending a bigger message is disconnected
// by the receiver (it reconnects under a new PeerId) and the message dropped.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.h"

namespace cleave::net {

// Binds a server. Throws TransportError when the endpoint is malformed or taken.
std::unique_ptr<ServerChannel> zmq_bind(const std::string& endpoint, const ChannelOptions& options = {});

// Connects a client. The connection is made in the background (and remade after
// losses, see ChannelOptions), so this succeeds before the server is up;
// messages sent meanwhile are queued. Throws TransportError for a malformed
// endpoint.
std::unique_ptr<ClientChannel> zmq_connect(const std::string& endpoint, const ChannelOptions& options = {});

}  // namespace cleave::net
