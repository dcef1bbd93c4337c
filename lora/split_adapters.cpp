#include "lora/split_adapters.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace cleave::lora {

AdapterSet combine_split_adapters(const LlamaModel& model, const LoraOptions& options, const NamedTensors& site,
                                  const NamedTensors* server) {
  AdapterSet full = AdapterSet::create(model, options, 0);
  NamedTensors named = full.to_named();
  for (auto& [name, tensor] : named) {
    if (is_lora_b(name)) tensor.zero_();
  }
  auto overlay = [&named](const NamedTensors& tensors, const char* whose) {
    for (const auto& [name, tensor] : tensors) {
      auto it = named.find(name);
      if (it == named.end()) {
        throw std::invalid_argument(std::string(whose) + " adapter " + name +
                                    " is not an adapted projection of the model (check lora.targets and "
                                    "lora.layers against the run that trained it)");
      }
      if (it->second.sizes() != tensor.sizes()) {
        throw std::invalid_argument(std::string(whose) + " adapter " + name + " has shape " +
                                    c10::str(tensor.sizes()) + ", expected " + c10::str(it->second.sizes()) +
                                    " (another lora.rank?)");
      }
      it->second = tensor;
    }
  };
  if (server) overlay(*server, "split server");
  overlay(site, "site");
  full.assign(named);
  full.set_training(false);
  return full;
}

}  // namespace cleave::lora
