// LoRA hyperparameters (config section `lora:`), PEFT conventions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cleave::lora {

// How the adapters of several sites (or of a split server's per-site copies)
// become one:
//  - separate: A and B are averaged on their own (FedAvg over the flat tensors);
//    the mean of the products B_i A_i is not the product of the means.
//  - ffa: A stays at its shared initialisation and only B trains and is
//    averaged, so mean(B_i) A = mean(B_i A): exact (FFA-LoRA, Sun et al.,
//    ICLR 2024, "Improving LoRA in Privacy-preserving Federated Learning").
//  - product: the weighted mean of the products B_i A_i is computed exactly
//    and re-factored to rank r by truncated SVD (FlexLoRA, Bai et al.,
//    NeurIPS 2024), with the truncation error reported.
enum class LoraAggregation { separate, ffa, product };

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  // Any of q, k, v, o, gate, up, down.
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
  // Blocks that get adapters; empty means all.
  std::vector<int64_t> layers;
  // Every role of a federation must use the same (sites, split servers, aggregator).
  LoraAggregation aggregation = LoraAggregation::separate;

  // Throws std::invalid_argument naming the field.
  void validate() const;
  // The one place the LoRA scale is computed: alpha / rank.
  double scale() const { return alpha / static_cast<double>(rank); }
  // FFA-LoRA trains B only: A keeps the values it started the run with.
  bool freezes_a() const { return aggregation == LoraAggregation::ffa; }
};

// "separate", "ffa", "product": the config's spelling.
std::string aggregation_name(LoraAggregation aggregation);

// "q" -> "attn_q", ..., "down" -> "ffn_down"; throws on an unknown target.
std::string target_tensor(const std::string& target);
// "blk.3.attn_q.weight" -> "q"; empty if the name is not an adaptable projection.
std::string target_of(const std::string& base_name);
// "blk.3.attn_q.weight" -> 3; -1 if not a block tensor.
int64_t layer_of(const std::string& base_name);

}  // namespace cleave::lora
