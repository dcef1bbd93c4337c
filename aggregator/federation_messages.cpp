#include "aggregator/federation_messages.h"

namespace cleave::aggregator {

const char* message_name(FederationMessage type) {
  switch (type) {
    case FederationMessage::register_client: return "register";
    case FederationMessage::register_reply: return "register_reply";
    case FederationMessage::round_request: return "round_request";
    case FederationMessage::round_assignment: return "round_assignment";
    case FederationMessage::wait: return "wait";
    case FederationMessage::finished: return "finished";
    case FederationMessage::update: return "update";
    case FederationMessage::update_ack: return "update_ack";
    case FederationMessage::secagg_keys: return "secagg_keys";
    case FederationMessage::secagg_poll: return "secagg_poll";
    case FederationMessage::secagg_peer_keys: return "secagg_peer_keys";
    case FederationMessage::secagg_shares: return "secagg_shares";
    case FederationMessage::secagg_peer_shares: return "secagg_peer_shares";
    case FederationMessage::secagg_masked_input: return "secagg_masked_input";
    case FederationMessage::secagg_unmask_request: return "secagg_unmask_request";
    case FederationMessage::secagg_unmask_shares: return "secagg_unmask_shares";
    case FederationMessage::secagg_abort: return "secagg_abort";
    case FederationMessage::secagg_withdraw: return "secagg_withdraw";
    case FederationMessage::secagg_consistency_check: return "secagg_consistency_check";
    case FederationMessage::secagg_consistency_signature: return "secagg_consistency_signature";
    case FederationMessage::error: return "error";
  }
  return "unknown";
}

}  // namespace cleave::aggregator
