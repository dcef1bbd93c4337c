#include "simulate/fleet_network.h"

#include <stdexcept>

#include "transport/zmq_channel.h"

namespace cleave::simulate {
namespace {

// The largest application message either end accepts: the transport's own
// default, so TLS and plaintext fleets carry the same messages.
constexpr uint64_t kMaxMessageBytes = uint64_t{256} << 20;

net::ChannelOptions transport_options(bool encrypted) {
  net::ChannelOptions options;
  options.max_message_bytes =
      encrypted ? secure::inner_message_bytes(kMaxMessageBytes) : static_cast<int64_t>(kMaxMessageBytes);
  // A site's channel is closed right after its last message: its TLS goodbye
  // must still go out, or the service keeps the session until it is evicted.
  // (ZeroMQ sends it in the background; closing does not wait.)
  options.linger_ms = 1000;
  return options;
}

}  // namespace

secure::NodeRole service_role(const std::string& server) {
  if (server == kAggregatorNode) return secure::NodeRole::aggregator;
  if (server == kSplitServerNode || server.rfind(std::string(kSplitServerNode) + "-", 0) == 0) {
    return secure::NodeRole::split_server;   // a chain's hops: split-server-2, ...
  }
  throw std::invalid_argument("'" + server + "' is not a fleet service (expected " + kAggregatorNode + " or " +
                              kSplitServerNode + ")");
}

FleetNetwork::FleetNetwork(FleetTransport transport, const FleetPki* pki, Log log, int64_t handshake_timeout_ms)
    : transport_(transport),
      pki_(pki),
      log_(std::move(log)),
      handshake_timeout_ms_(handshake_timeout_ms),
      channel_options_(transport_options(pki != nullptr)),
      inproc_(channel_options_) {
  if (handshake_timeout_ms_ <= 0) throw std::invalid_argument("the TLS handshake timeout must be positive");
}

secure::SecureChannelOptions FleetNetwork::tls_options(const secure::TlsIdentity& identity) const {
  secure::SecureChannelOptions options;
  options.identity = identity;
  options.handshake_timeout = secure::Millis(handshake_timeout_ms_);
  options.max_message_bytes = kMaxMessageBytes;
  options.log = log_.prefixed("tls: ");
  return options;
}

std::unique_ptr<net::ServerChannel> FleetNetwork::bind(const std::string& node, secure::PeerPolicy policy) {
  std::unique_ptr<net::ServerChannel> plain = transport_ == FleetTransport::inproc
                                                  ? inproc_.bind(node)
                                                  : net::zmq_bind(service_host_.empty() ? "tcp://127.0.0.1:0"
                                                                                        : "tcp://0.0.0.0:0",
                                                                  channel_options_);
  if (!pki_) {
    secure::warn_insecure(node + " at " + plain->endpoint(), log_);
    return plain;
  }
  secure::SecureChannelOptions options = tls_options(pki_->identity(node));
  options.allowed_peer_roles = policy.roles;
  auto server = std::make_unique<secure::SecureServerChannel>(std::move(plain), std::move(options));
  return secure::guard_server_channel(std::move(server), std::move(policy), log_.prefixed("tls: "));
}

std::string FleetNetwork::address(const std::string& node, const net::ServerChannel& channel) const {
  if (transport_ == FleetTransport::inproc) return node;
  std::string endpoint = channel.endpoint();   // tcp://0.0.0.0:PORT when serving every interface
  const std::string any = "tcp://0.0.0.0:";
  if (!service_host_.empty() && endpoint.rfind(any, 0) == 0) endpoint = "tcp://" + service_host_ + ":" + endpoint.substr(any.size());
  return endpoint;
}

std::unique_ptr<net::ClientChannel> FleetNetwork::connect_plain(const std::string& address) {
  if (transport_ == FleetTransport::inproc) return inproc_.connect(address);
  return net::zmq_connect(address, channel_options_);
}

std::unique_ptr<net::ClientChannel> FleetNetwork::connect(const std::string& node, const std::string& address,
                                                          const std::string& server) {
  if (!pki_) {
    service_role(server);   // the same check as with TLS
    return connect_plain(address);
  }
  return connect_as(pki_->identity(node), address, server);
}

std::unique_ptr<net::ClientChannel> FleetNetwork::connect_as(const secure::TlsIdentity& identity,
                                                             const std::string& address, const std::string& server) {
  const secure::NodeRole role = service_role(server);
  if (!pki_) return connect_plain(address);
  secure::SecureChannelOptions options = tls_options(identity);
  options.allowed_peer_roles = {role};
  options.expected_peer_name = server;
  return secure::retryable_client_channel(
      std::make_unique<secure::SecureClientChannel>(connect_plain(address), std::move(options)));
}

}  // namespace cleave::simulate
