// A Hugging Face config.json of a Llama-family model, read into the
// LlamaConfig a GGUF file would give.
#pragma once

#include <string>

#include "model/llama_config.h"

namespace cleave::convert {

// The architectures cleave converts, as config.json's `architectures` names
// them: LlamaForCausalLM (Llama, SmolLM, TinyLlama) and Qwen2ForCausalLM.
struct HfModelConfig {
  std::string hf_architecture;  // "LlamaForCausalLM"
  // architecture "llama" or "qwen2"; tied_output from tie_word_embeddings,
  // qkv_bias for Qwen2.
  LlamaConfig config;
  std::string torch_dtype;  // as written ("bfloat16"), "" when absent: informational,
                            // each tensor's own dtype is what is converted
};

// Reads and checks `path` (config.json). An architecture cleave does not run
// or a setting it would silently compute differently (rope_scaling, sliding
// windows, an activation other than SiLU, Llama attention or MLP biases) is
// refused; every error names the file and the field.
HfModelConfig read_hf_config(const std::string& path);

}  // namespace cleave::convert
