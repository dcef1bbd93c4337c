// Which authenticated peers may send what to the aggregator: sites register,
// poll and send updates under their own certificate name (the split server's
// policy is split/peer_policy.h, whose id check this shares).
#pragma once

#include "secure/service_channel.h"

namespace cleave::aggregator {

secure::PeerPolicy aggregator_policy();

}  // namespace cleave::aggregator
