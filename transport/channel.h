// Message channels between cleave roles. A channel moves whole opaque
// messages (byte strings); what is inside is the business of split/,
// aggregator/ and secure/. Two implementations: ZeroMQ (transport/zmq_channel.h)
// and in-process queues (transport/inproc_channel.h). secure/ wraps either.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cleave::net {

using Bytes = std::vector<uint8_t>;
using Millis = std::chrono::milliseconds;

// Opaque id of one connected client as seen by a server (ZeroMQ routing id,
// or the in-process endpoint's id).
using PeerId = std::string;

struct Envelope {
  PeerId peer;
  Bytes payload;
};

// A transport failure the caller can act on (bad endpoint, port in use,
// oversized message, server gone).
class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ServerChannel::send to a peer that is not (or no longer) connected. A role
// catches this and treats the client as failed for the round.
class PeerUnreachable : public TransportError {
 public:
  using TransportError::TransportError;
};

// ServerChannel::send to a peer that does not read: its queue of unsent
// messages is full. The message is dropped rather than block the server; the
// caller treats the peer as gone (a TLS server drops its session).
class PeerNotReading : public PeerUnreachable {
 public:
  using PeerUnreachable::PeerUnreachable;
};

// Options shared by both implementations (in-process uses only
// max_message_bytes).
struct ChannelOptions {
  // Largest payload accepted. Sending a bigger one throws TransportError on the
  // sender; a peer that sends one anyway (ZeroMQ) is disconnected by the
  // receiver and the message is never delivered.
  int64_t max_message_bytes = 256 << 20;
  int linger_ms = 0;                 // how long close waits for unsent messages
  int reconnect_ivl_ms = 100;        // first retry after a lost connection
  int reconnect_ivl_max_ms = 5000;   // back-off cap for later retries
  // Server: messages queued for one peer that has not read them. A send
  // beyond it throws PeerNotReading at once: no server thread ever waits on
  // a peer. Services send one reply per request, so an honest peer has at
  // most a few queued.
  int peer_queue_messages = 64;
  // Kernel socket buffers (SO_SNDBUF / SO_RCVBUF); 0 keeps the OS default.
  int socket_send_buffer_bytes = 0;
  int socket_receive_buffer_bytes = 0;

  void validate() const {
    if (max_message_bytes <= 0)
      throw TransportError("ChannelOptions.max_message_bytes is " + std::to_string(max_message_bytes) +
                           ": it must be positive");
    if (linger_ms < -1)
      throw TransportError("ChannelOptions.linger_ms is " + std::to_string(linger_ms) +
                           ": use -1 (wait forever), 0 (drop) or a positive number of ms");
    if (peer_queue_messages < 1)
      throw TransportError("ChannelOptions.peer_queue_messages is " + std::to_string(peer_queue_messages) +
                           ": it must be at least 1");
    if (socket_send_buffer_bytes < 0 || socket_receive_buffer_bytes < 0)
      throw TransportError("ChannelOptions.socket_send_buffer_bytes and socket_receive_buffer_bytes must be >= 0 "
                           "(0 keeps the OS default)");
    if (reconnect_ivl_ms < 0 || reconnect_ivl_max_ms < 0)
      throw TransportError("ChannelOptions.reconnect_ivl_ms and reconnect_ivl_max_ms must be >= 0, got " +
                           std::to_string(reconnect_ivl_ms) + " and " + std::to_string(reconnect_ivl_max_ms));
  }
};

// Neither end is thread-safe: each channel object is used from one thread at a
// time (ZeroMQ sockets are not thread-safe). Different channel objects may live
// in different threads.

// The client end: talks to exactly one server.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  // Queues the payload for the server; throws TransportError when it is larger
  // than max_message_bytes.
  virtual void send(Bytes payload) = 0;
  // nullopt when nothing arrived within `timeout`.
  virtual std::optional<Bytes> recv(Millis timeout) = 0;
  // Drops the connection state and reconnects (a fresh peer id on the server side).
  virtual void reconnect() = 0;
  virtual std::string describe() const = 0;   // for logs: "tcp://127.0.0.1:5555"
};

// The server end: many clients, each known by its PeerId.
class ServerChannel {
 public:
  virtual ~ServerChannel() = default;
  // Never blocks. Throws PeerUnreachable when `peer` is not connected (never
  // was, or left), PeerNotReading when its queue is full.
  virtual void send(const PeerId& peer, Bytes payload) = 0;
  virtual std::optional<Envelope> recv(Millis timeout) = 0;
  // The address clients connect to, with the real port when bound to port 0.
  virtual std::string endpoint() const = 0;
};

}  // namespace cleave::net
