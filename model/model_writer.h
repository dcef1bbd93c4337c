// Writing a Llama model as GGUF (float32 tensors), and random initialisation
// for built-in defaults, tests and benchmarks.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "model/llama_config.h"
#include "model/tokenizer.h"

namespace cleave {

// GGUF tensor name -> float tensor in PyTorch layout ([out, in] for matrices).
using LlamaWeights = std::map<std::string, at::Tensor>;

// Normal(0, 0.02) matrices and embeddings, ones for norms (HF's Llama init),
// deterministic for a seed. Output projection only when !config.tied_output.
LlamaWeights random_llama_weights(const LlamaConfig& config, uint64_t seed);

// Writes general.*, llama.* hyperparameters, the tokenizer (when given) and the
// tensors. Atomic (temporary file + rename).
void write_llama_gguf(const std::string& path, const LlamaConfig& config,
                      const LlamaWeights& weights, const Vocabulary* vocab);

}  // namespace cleave
