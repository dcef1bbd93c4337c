// Hyperparameters of a Llama-family decoder, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

namespace cleave {
namespace gguf { class File; }

struct LlamaConfig {
  std::string architecture = "llama";   // GGUF general.architecture (llama, qwen2, ...)
  int64_t vocab_size = 0;
  int64_t dim = 0;                      // embedding width
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;               // grouped-query attention when < n_heads
  int64_t head_dim = 0;                 // dim / n_heads unless key_length says otherwise
  int64_t ffn_dim = 0;
  double norm_eps = 1e-5;
  double rope_base = 10000.0;
  int64_t rope_dims = 0;                // rotated dims per head (head_dim by default)
  int64_t context_length = 2048;
  bool tied_output = false;             // output projection shares token_embd
  bool qkv_bias = false;                // Qwen2-style biases on q, k, v

  int64_t q_dim() const { return n_heads * head_dim; }
  // GGUF llama files permute q/k rows so RoPE rotates adjacent pairs; qwen2
  // (NEOX style) keeps Hugging Face's rotate-half layout.
  bool rope_rotates_halves() const { return architecture == "qwen2"; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
  std::string summary() const;          // "dim 64, 5 blocks, 8 heads (4 kv), ffn 172, vocab 512"
};

// Reads `<arch>.embedding_length` etc. Supported architectures: llama, qwen2
// (and anything else that uses the llama tensor layout); others are refused.
LlamaConfig config_from_gguf(const gguf::File& file);

}  // namespace cleave
