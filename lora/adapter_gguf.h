// LoRA adapters as GGUF files in the convention llama.cpp loads with --lora:
// general.type "adapter", adapter.type "lora", adapter.lora.alpha (FLOAT32),
// tensors "<base>.lora_a" ne [in, r] and "<base>.lora_b" ne [r, out].
#pragma once

#include <map>
#include <string>

#include "lora/adapter_set.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::lora {

// "dim=64 layers=5 heads=8/4 ffn=172 vocab=512": what an adapter must match.
std::string base_fingerprint(const LlamaModel& model);

// Extra string metadata (e.g. "cleave.round") may be added via `extra`.
void save_gguf(const AdapterSet& adapters, const LlamaModel& model, const std::string& path,
               const std::map<std::string, std::string>& extra = {});

// Loads an adapter for `model`. A file for another base (architecture,
// fingerprint, missing base tensors or wrong shapes) is refused with a message
// that says so; a file that is not a LoRA adapter is refused too.
AdapterSet load_gguf(const std::string& path, const LlamaModel& model);

}  // namespace cleave::lora
