// LoRA hyperparameters (config section `lora:`), PEFT conventions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cleave::lora {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  // Any of q, k, v, o, gate, up, down.
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
  // Blocks that get adapters; empty means all.
  std::vector<int64_t> layers;

  // Throws std::invalid_argument naming the field.
  void validate() const;
  // The one place the LoRA scale is computed: alpha / rank.
  double scale() const { return alpha / static_cast<double>(rank); }
};

// "q" -> "attn_q", ..., "down" -> "ffn_down"; throws on an unknown target.
std::string target_tensor(const std::string& target);
// "blk.3.attn_q.weight" -> "q"; empty if the name is not an adaptable projection.
std::string target_of(const std::string& base_name);
// "blk.3.attn_q.weight" -> 3; -1 if not a block tensor.
int64_t layer_of(const std::string& base_name);

}  // namespace cleave::lora
