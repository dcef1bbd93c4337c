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
    case FederationMessage::error: return "error";
  }
  return "unknown";
}

}  // namespace cleave::aggregator
