// Hugging Face checkpoints as GGUF models: config.json, model.safetensors (or
// the shards model.safetensors.index.json names) and tokenizer.json, mapped
// the way llama.cpp's convert_hf_to_gguf.py maps a Llama or Qwen2 model.
// Tensors keep their dtype (F32, F16, BF16; norms and biases become F32), q
// and k rows of `llama` models are permuted into GGUF's interleaved RoPE
// layout, and the llama.* keys are the ones config_from_gguf reads.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/gguf.h"

namespace cleave::convert {

struct HfImportOptions {
  // Copy tokenizer.* from this GGUF instead of reading tokenizer.json.
  std::optional<std::string> vocab_gguf;
};

// Whether `path` is a directory holding a config.json.
bool is_hf_checkpoint(const std::string& path);

// The checkpoint in `dir` as a GGUF writer, ready to write() or to_bytes().
// Every problem throws std::runtime_error naming the file and the field or
// tensor: a missing config.json or shard, a tensor the mapping does not know,
// sizes in config.json that disagree with the tensors, an unsupported dtype.
gguf::Writer hf_to_gguf(const std::string& dir, const HfImportOptions& options = {});

// Converted in memory and opened as a GGUF file named "<dir> (Hugging Face)".
std::shared_ptr<const gguf::File> open_hf_checkpoint(const std::string& dir,
                                                     const HfImportOptions& options = {});

}  // namespace cleave::convert
