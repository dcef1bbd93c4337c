// Folding adapters into a float base (W += scale * B A) and back out.
#pragma once

namespace cleave {
class LlamaModel;
}

namespace cleave::lora {
class AdapterSet;

// Throws if a targeted weight is quantized (merging needs a float base).
void merge(LlamaModel& model, const AdapterSet& adapters);
void unmerge(LlamaModel& model, const AdapterSet& adapters);

}  // namespace cleave::lora
