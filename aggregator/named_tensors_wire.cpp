#include "aggregator/named_tensors_wire.h"

#include <ATen/ATen.h>

#include "split/tensor_wire.h"

namespace cleave::aggregator {

WireTensors encode_tensors(const NamedTensors& tensors) {
  WireTensors out;
  for (const auto& [name, tensor] : tensors) out[name] = split::to_wire(tensor, wire::WireDType::F32);
  return out;
}

NamedTensors decode_tensors(const WireTensors& received, const NamedTensors& reference,
                            const std::string& what) {
  for (const auto& [name, tensor] : received) {
    if (!reference.count(name)) {
      throw wire::WireError(what + " has tensor " + name + ", which is not among the " +
                            std::to_string(reference.size()) +
                            " adapter tensors expected here: do both sides use the same lora "
                            "targets, layers and cut_layer?");
    }
  }
  NamedTensors out;
  for (const auto& [name, expected] : reference) {
    auto it = received.find(name);
    if (it == received.end()) {
      throw wire::WireError(what + " lacks tensor " + name + " (" + std::to_string(received.size()) +
                            " tensors received, " + std::to_string(reference.size()) +
                            " expected): do both sides use the same lora targets, layers and cut_layer?");
    }
    const std::string label = what + " tensor " + name;
    out[name] = split::from_wire(it->second, expected.sizes().vec(), label.c_str());
  }
  return out;
}

}  // namespace cleave::aggregator
