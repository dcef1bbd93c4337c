// In-process channels: the same ServerChannel/ClientChannel contract as
// ZeroMQ, over mutex-guarded queues, for simulations and tests without
// sockets. Payloads are moved, never copied. Servers and clients may live in
// different threads (each object used by one thread at a time, as always).
//
// Failure semantics, chosen to be loud:
//  - bind() of a name already bound throws TransportError;
//  - connect() to a name nobody bound throws TransportError;
//  - once a server is destroyed its name is free again, its clients' send()
//    throws TransportError and their recv() only times out; reconnect() looks
//    the name up again (and throws if still unbound);
//  - a server's send() to a client that was destroyed or reconnected throws
//    PeerUnreachable;
//  - a payload above ChannelOptions::max_message_bytes throws TransportError on
//    the sender and is never delivered.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.h"

namespace cleave::net {

// A namespace of server names. Copies are handles to the same network.
class InprocNetwork {
 public:
  explicit InprocNetwork(ChannelOptions options = {});

  std::unique_ptr<ServerChannel> bind(const std::string& name);
  std::unique_ptr<ClientChannel> connect(const std::string& name);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace cleave::net
