// The whole model's adapters after split training. A split run leaves two
// adapter sets: the sites' (the aggregator's global client-side adapters,
// blocks [0, cut_layer) and in u_shaped [top_cut, L)) and the split server's
// (blocks [min_cut_layer, L)). The server also keeps copies of the blocks the
// sites run in u_shaped, which it never trains, so the sites' adapters take
// precedence wherever both hold a block.
#pragma once

#include "lora/adapter_set.h"

namespace cleave::lora {

// Adapters for every targeted projection of `model` (options.targets and
// .layers): B = 0 (the identity) where neither set has one, the server's
// tensors over that (null: none), then the site's. Throws
// std::invalid_argument naming a tensor that is not a projection of the model
// or has another shape.
AdapterSet combine_split_adapters(const LlamaModel& model, const LoraOptions& options, const NamedTensors& site,
                                  const NamedTensors* server);

}  // namespace cleave::lora
