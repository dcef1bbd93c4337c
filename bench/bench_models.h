// The random Llama shapes the benchmarks time, named as in BENCHMARKS.md:
// one home so every bench's "llama-40M" is the same model.
#pragma once

#include <stdexcept>
#include <string>

#include "model/llama_config.h"

namespace cleave::bench {

// "llama-40M" or "llama-110M" (32k vocabulary, 2048 context); throws for others.
inline LlamaConfig random_llama_config(const std::string& name) {
  LlamaConfig c;
  c.vocab_size = 32000;
  c.context_length = 2048;
  if (name == "llama-40M") {
    c.dim = 512, c.n_layers = 8, c.n_heads = 8, c.n_kv_heads = 4, c.ffn_dim = 1376;
  } else if (name == "llama-110M") {
    c.dim = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.ffn_dim = 2048;
  } else {
    throw std::invalid_argument("unknown benchmark model '" + name + "': expected llama-40M or llama-110M");
  }
  c.head_dim = c.dim / c.n_heads;
  c.rope_dims = c.head_dim;
  return c;
}

}  // namespace cleave::bench
