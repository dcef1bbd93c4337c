// A small random Llama written as GGUF, for tests that need a model but not
// the real weights. Header-only: only LibTorch tests include it.
#pragma once

#include <string>

#include "model/model_writer.h"
#include "tests/support/shared_data.h"

namespace cleave::test {

inline LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab_size = 64;
  c.dim = 32;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.rope_dims = 8;
  c.ffn_dim = 48;
  c.context_length = 128;
  return c;
}

// Writes the tiny model into a scratch dir named after `test_name`; returns its path.
inline std::string write_tiny_model(const std::string& test_name, uint64_t seed = 7,
                                    LlamaConfig config = tiny_config()) {
  const std::string path = scratch_dir(test_name) + "/tiny.gguf";
  write_llama_gguf(path, config, random_llama_weights(config, seed), nullptr);
  return path;
}

}  // namespace cleave::test
