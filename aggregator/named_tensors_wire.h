// Adapter tensors (lora::NamedTensors) to and from the federation's wire
// form, with every name and shape checked against what the receiver holds.
#pragma once

#include "aggregator/client_update.h"
#include "aggregator/federation_messages.h"

namespace cleave::aggregator {

// Every tensor as f32 (exact). Throws wire::WireError on a NaN/Inf value.
WireTensors encode_tensors(const NamedTensors& tensors);

// Decodes `received` into tensors named and shaped exactly like `reference`.
// Throws wire::WireError naming `what` and the first missing, extra,
// misshapen or non-finite tensor.
NamedTensors decode_tensors(const WireTensors& received, const NamedTensors& reference,
                            const std::string& what);

}  // namespace cleave::aggregator
