#include "transport/zmq_channel.h"

#include <zmq.hpp>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

namespace cleave::net {
namespace {

using Clock = std::chrono::steady_clock;

// One context per process. Deliberately never destroyed: zmq_ctx_term blocks
// until every socket is closed, so a channel still alive at exit (say, held by
// a static) would hang the process on the way out.
zmq::context_t& process_context() {
  static auto* context = new zmq::context_t();
  return *context;
}

void apply_options(zmq::socket_t& socket, const ChannelOptions& options) {
  socket.set(zmq::sockopt::linger, options.linger_ms);
  socket.set(zmq::sockopt::maxmsgsize, options.max_message_bytes);
  socket.set(zmq::sockopt::reconnect_ivl, options.reconnect_ivl_ms);
  socket.set(zmq::sockopt::reconnect_ivl_max, options.reconnect_ivl_max_ms);
  if (options.socket_send_buffer_bytes > 0) socket.set(zmq::sockopt::sndbuf, options.socket_send_buffer_bytes);
  if (options.socket_receive_buffer_bytes > 0) socket.set(zmq::sockopt::rcvbuf, options.socket_receive_buffer_bytes);
}

void check_size(const Bytes& payload, const ChannelOptions& options, const std::string& where) {
  if (static_cast<int64_t>(payload.size()) > options.max_message_bytes)
    throw TransportError("message of " + std::to_string(payload.size()) + " bytes to " + where +
                         " exceeds max_message_bytes " + std::to_string(options.max_message_bytes) +
                         ": split it or raise ChannelOptions.max_message_bytes on both ends");
}

// Hands the payload's buffer to ZeroMQ without copying; ZeroMQ frees it (from
// its I/O thread) once sent.
zmq::message_t to_message(Bytes payload) {
  if (payload.empty()) return zmq::message_t();
  auto owned = std::make_unique<Bytes>(std::move(payload));
  zmq::message_t message(
      owned->data(), owned->size(), [](void*, void* hint) { delete static_cast<Bytes*>(hint); }, owned.get());
  owned.release();   // ZeroMQ owns it now
  return message;
}

Bytes to_bytes(const zmq::message_t& message) {
  const auto* data = message.data<uint8_t>();
  return Bytes(data, data + message.size());
}

// Waits until `socket` has a message or `deadline` passes (then false).
bool wait_readable(zmq::socket_t& socket, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() < 0) left = Millis(0);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    try {
      return zmq::poll(&item, 1, left) > 0;
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;   // a signal: poll again for the time left
    }
  }
}

// Receives the rest of a multipart message and throws it away.
void drain_parts(zmq::socket_t& socket, zmq::message_t& part) {
  while (part.more()) (void)socket.recv(part, zmq::recv_flags::none);
}

// Routing ids are binary; hex for messages.
std::string peer_text(const PeerId& peer) {
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char c : peer) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

class ZmqServer final : public ServerChannel {
 public:
  ZmqServer(const std::string& endpoint, const ChannelOptions& options)
      : options_(options), socket_(process_context(), zmq::socket_type::router) {
    apply_options(socket_, options_);
    // Replies to unknown peers fail loudly (PeerUnreachable) instead of
    // vanishing; with it, a full queue makes a non-blocking send fail with
    // EAGAIN (PeerNotReading) instead of dropping silently.
    socket_.set(zmq::sockopt::router_mandatory, true);
    socket_.set(zmq::sockopt::sndhwm, options_.peer_queue_messages);
    try {
      socket_.bind(endpoint);
    } catch (const zmq::error_t& e) {
      throw TransportError("cannot bind '" + endpoint + "': " + e.what() +
                           " (is another server on this port, or the address malformed?)");
    }
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }

  void send(const PeerId& peer, Bytes payload) override {
    check_size(payload, options_, "peer " + peer_text(peer));
    try {
      // A full queue shows on the routing frame (nothing is sent then); once
      // that is taken, the payload frame goes to the same queue.
      const bool taken =
          socket_.send(zmq::buffer(peer.data(), peer.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
          socket_.send(to_message(std::move(payload)), zmq::send_flags::dontwait);
      if (!taken)
        throw PeerNotReading("peer " + peer_text(peer) + " on " + endpoint_ + " has " +
                             std::to_string(options_.peer_queue_messages) +
                             " unread messages queued (ChannelOptions.peer_queue_messages): it is not reading; "
                             "the message was dropped");
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH)
        throw PeerUnreachable("peer " + peer_text(peer) + " is not connected to " + endpoint_ +
                              " (it left or reconnected under a new id)");
      throw TransportError("send on " + endpoint_ + " failed: " + e.what());
    }
  }

  std::optional<Envelope> recv(Millis timeout) override {
    const auto deadline = Clock::now() + std::max(timeout, Millis(0));
    while (wait_readable(socket_, deadline)) {
      zmq::message_t routing_id;
      if (!socket_.recv(routing_id, zmq::recv_flags::dontwait)) continue;
      if (!routing_id.more()) continue;   // a ROUTER always adds a frame; be defensive
      zmq::message_t payload;
      (void)socket_.recv(payload, zmq::recv_flags::none);
      if (payload.more()) {
        // Not a cleave client (those send one frame per message): drop it,
        // and do not let a stream of them keep the caller past its timeout.
        drain_parts(socket_, payload);
        if (Clock::now() >= deadline) return std::nullopt;
        continue;
      }
      return Envelope{routing_id.to_string(), to_bytes(payload)};
    }
    return std::nullopt;
  }

  std::string endpoint() const override { return endpoint_; }

 private:
  ChannelOptions options_;
  zmq::socket_t socket_;
  std::string endpoint_;
};

class ZmqClient final : public ClientChannel {
 public:
  ZmqClient(std::string endpoint, const ChannelOptions& options)
      : endpoint_(std::move(endpoint)), options_(options) {
    open();
  }

  void send(Bytes payload) override {
    check_size(payload, options_, endpoint_);
    try {
      socket_.send(to_message(std::move(payload)), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      throw TransportError("send to " + endpoint_ + " failed: " + e.what());
    }
  }

  std::optional<Bytes> recv(Millis timeout) override {
    const auto deadline = Clock::now() + std::max(timeout, Millis(0));
    while (wait_readable(socket_, deadline)) {
      zmq::message_t payload;
      if (!socket_.recv(payload, zmq::recv_flags::dontwait)) continue;
      if (payload.more()) {
        drain_parts(socket_, payload);
        continue;
      }
      return to_bytes(payload);
    }
    return std::nullopt;
  }

  // A fresh socket means a fresh connection, hence a fresh routing id on the
  // server; unsent and unread messages of the old one are dropped.
  void reconnect() override {
    socket_.close();
    open();
  }

  std::string describe() const override { return endpoint_; }

 private:
  void open() {
    socket_ = zmq::socket_t(process_context(), zmq::socket_type::dealer);
    apply_options(socket_, options_);
    try {
      socket_.connect(endpoint_);
    } catch (const zmq::error_t& e) {
      throw TransportError("cannot connect to '" + endpoint_ + "': " + e.what() +
                           " (expected an address like tcp://127.0.0.1:5555)");
    }
  }

  std::string endpoint_;
  ChannelOptions options_;
  zmq::socket_t socket_;
};

}  // namespace

std::unique_ptr<ServerChannel> zmq_bind(const std::string& endpoint, const ChannelOptions& options) {
  options.validate();
  return std::make_unique<ZmqServer>(endpoint, options);
}

std::unique_ptr<ClientChannel> zmq_connect(const std::string& endpoint, const ChannelOptions& options) {
  options.validate();
  return std::make_unique<ZmqClient>(endpoint, options);
}

}  // namespace cleave::net
