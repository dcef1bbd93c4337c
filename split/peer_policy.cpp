#include "split/peer_policy.h"

#include <cereal/types/string.hpp>

#include "split/split_messages.h"
#include "wire/archive.h"
#include "wire/frame.h"

namespace cleave::split {

using secure::NodeRole;

std::optional<std::string> leading_client_id(const net::Bytes& frame) {
  try {
    wire::peek(frame);
    wire::WireInputArchive archive(frame.data() + wire::kFrameHeaderBytes, frame.size() - wire::kFrameHeaderBytes);
    std::string id;
    archive(id);
    return id;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::string> claims_other_id(const secure::PeerIdentity& peer, const net::Bytes& frame) {
  const std::optional<std::string> id = leading_client_id(frame);
  if (!id || *id == peer.node_id) return std::nullopt;
  return "the message claims client id '" + *id + "' but the sender's certificate is for '" + peer.node_id + "'";
}

secure::PeerPolicy split_server_policy(const std::string& previous) {
  secure::PeerPolicy policy;
  policy.roles = previous.empty() ? std::set<NodeRole>{NodeRole::client, NodeRole::aggregator}
                                  : std::set<NodeRole>{NodeRole::split_server, NodeRole::aggregator};
  policy.check = [previous](const secure::PeerIdentity& peer, const net::Bytes& frame) -> std::optional<std::string> {
    MessageType type;
    try {
      type = static_cast<MessageType>(wire::peek(frame).type);
    } catch (const std::exception&) {
      return std::nullopt;  // the split server answers malformed frames itself
    }
    if (!previous.empty() && peer.role == NodeRole::split_server) {
      if (peer.node_id != previous) {
        return "only split server '" + previous + "' (split_server.previous) forwards to this hop, not '" +
               peer.node_id + "'";
      }
      return std::nullopt;   // it relays the sites' requests and the aggregator's round closes
    }
    if (type == MessageType::end_round || type == MessageType::sync_round) {
      if (peer.role != NodeRole::aggregator) return std::string("only the aggregator may close or set a round");
      return std::nullopt;
    }
    if (peer.role != NodeRole::client) {
      return std::string("only clients train through the split server (") + message_name(type) + " from a " +
             secure::role_name(peer.role) + ")";
    }
    return claims_other_id(peer, frame);
  };
  policy.refusal = [](const std::string& reason) {
    ErrorReply reply;   // no step key: the refusal is about the sender, not a step
    reply.message = reason;
    return wire::pack(static_cast<uint16_t>(MessageType::error), reply);
  };
  return policy;
}

}  // namespace cleave::split
