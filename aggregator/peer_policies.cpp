#include "aggregator/peer_policies.h"

#include "aggregator/federation_messages.h"
#include "split/peer_policy.h"

namespace cleave::aggregator {

secure::PeerPolicy aggregator_policy() {
  secure::PeerPolicy policy;
  policy.roles = {secure::NodeRole::client};
  policy.check = split::claims_other_id;
  policy.refusal = [](const std::string& reason) {
    return pack_message(FederationMessage::error, FederationErrorReply{reason});
  };
  return policy;
}

}  // namespace cleave::aggregator
