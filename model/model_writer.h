// Writing a Llama model as GGUF (float32 tensors), and random initialisation
// for built-in defaults, tests and benchmarks.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/tokenizer.h"

namespace cleave {

// GGUF tensor name -> float tensor in PyTorch layout ([out, in] for matrices).
using LlamaWeights = std::map<std::string, at::Tensor>;

// Normal(0, 0.02) matrices and embeddings, ones for norms (HF's Llama init),
// deterministic for a seed. Output projection only when !config.tied_output.
LlamaWeights random_llama_weights(const LlamaConfig& config, uint64_t seed);

// general.architecture and the `<arch>.*` hyperparameters config_from_gguf
// reads back (context length, sizes, heads, norm epsilon, RoPE).
void set_llama_metadata(gguf::Writer& writer, const LlamaConfig& config);

// What a GGUF `gpt2` (byte-level BPE) vocabulary has besides its tokens.
struct ByteLevelMetadata {
  std::vector<std::string> merges;  // "left right", first merges first
  std::string pre;                  // llama.cpp's pre-tokenizer name (tokenizer.ggml.pre)
};

// tokenizer.ggml.*, as Tokenizer::from_gguf reads them back: model `llama`
// (SentencePiece, with scores) without `byte_level`, else model `gpt2`.
void set_tokenizer_metadata(gguf::Writer& writer, const Vocabulary& vocab,
                            const ByteLevelMetadata* byte_level = nullptr);

// Writes general.*, llama.* hyperparameters, the tokenizer (when given) and the
// tensors. Atomic (temporary file + rename).
void write_llama_gguf(const std::string& path, const LlamaConfig& config,
                      const LlamaWeights& weights, const Vocabulary* vocab);

}  // namespace cleave
