// LoRA adapters as GGUF files in the convention llama.cpp loads with --lora:
// general.type "adapter", adapter.type "lora", adapter.lora.alpha (FLOAT32),
// tensors "<base>.lora_a" ne [in, r] and "<base>.lora_b" ne [r, out]. cleave
// adds cleave.lora.rank/.dropout/.targets and cleave.base.fingerprint. The one
// reader and writer of these files: the aggregator's global adapters are
// written and read here too, without a base model.
#pragma once

#include <map>
#include <string>

#include "lora/adapter_set.h"
#include "model/gguf.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::lora {

// An adapter file's contents, without a base model.
struct AdapterFile {
  std::string architecture = "llama";  // general.architecture of the base
  // LlamaModel::base_fingerprint() of the base it was trained on; empty when
  // the file records none (an adapter from llama.cpp's converter).
  std::string base_fingerprint;
  // alpha, dropout and targets as written. Read back: rank from the tensors;
  // targets as written, or from the tensor names when the file has none.
  LoraOptions lora;
  NamedTensors tensors;  // "<base>.lora_a" [r, in], "<base>.lora_b" [out, r]; float32 when read
  // Further metadata: written after the keys above; read back, every key
  // the file has besides general.*, adapter.* and the cleave keys above
  // (e.g. the aggregator's cleave.site.* and cleave.round).
  std::map<std::string, gguf::Value> extra;
};

// Writes atomically. Throws std::invalid_argument for a tensor that is not a
// 2-D "<base>.lora_a" / "<base>.lora_b" matrix.
void write_adapter_gguf(const AdapterFile& adapter, const std::string& path);

// Throws std::runtime_error naming the file when it is not a LoRA adapter,
// has no tensors, unpaired, non-2-D or unexpected tensors, or mixed ranks.
AdapterFile read_adapter_gguf(const std::string& path);

// Adapters trained on `model`, with its architecture and fingerprint. Extra
// string metadata (e.g. "cleave.round") may be added via `extra`.
void save_gguf(const AdapterSet& adapters, const LlamaModel& model, const std::string& path,
               const std::map<std::string, std::string>& extra = {});

// Loads an adapter for `model`. A file for another base (architecture,
// fingerprint, missing base tensors or wrong shapes) is refused with a message
// that says so; a file that is not a LoRA adapter is refused too.
AdapterSet load_gguf(const std::string& path, const LlamaModel& model);

// Throws std::runtime_error "<where>: adapter was trained on a different base
// model (...) than the one loaded (...)" unless `recorded` (an adapter's
// cleave.base.fingerprint; empty: none recorded, accepted) is `model`'s. A
// fingerprint of the dimensions only, written before cleave hashed the
// weights, is refused too, saying so and what to do.
void check_adapter_base(const std::string& where, const std::string& recorded, const LlamaModel& model);

}  // namespace cleave::lora
