// A Llama-family decoder over a frozen (optionally quantized) base:
// token embedding, blocks of RMSNorm -> GQA attention with RoPE -> RMSNorm ->
// SwiGLU feed-forward, final norm, output projection. The forward pass is cut
// into pieces (embed, run_blocks, head) so a split deployment can run blocks
// [0, cut_layer) on the client and the rest on the split server.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/frozen_linear.h"
#include "model/kv_cache.h"
#include "model/llama_config.h"
#include "model/loss.h"

namespace cleave {

struct LlamaBlock {
  at::Tensor attn_norm;  // [dim]
  FrozenLinear attn_q, attn_k, attn_v, attn_output;
  at::Tensor ffn_norm;   // [dim]
  FrozenLinear ffn_gate, ffn_up, ffn_down;
};

// Whether run_blocks keeps every block's intermediates for the backward pass
// (fastest) or recomputes each block there (gradient checkpointing: about one
// block's activations alive instead of all of them, for one more forward).
enum class BlockActivations { saved, recomputed };

class LlamaModel {
 public:
  // token_embd: [vocab, dim], float or quantized like the rest of the base
  // (only the rows looked up are dequantized). A tied output may share its
  // storage (then the two stay one tensor, also after to()).
  // `base_fingerprint` is what the loader computed from the file
  // (model/base_fingerprint.h); empty for a model built in code, which then
  // hashes its own weights as float32 (deterministic for the same weights).
  LlamaModel(LlamaConfig config, FrozenWeight token_embd, std::vector<LlamaBlock> blocks,
             at::Tensor output_norm, FrozenLinear output, std::string base_fingerprint = {});

  const LlamaConfig& config() const { return config_; }
  // "sha256:<hex> dim=.. layers=..": what adapters, split sessions and site
  // registrations must match; computed once, when the model was built.
  const std::string& base_fingerprint() const { return base_fingerprint_; }
  int64_t n_layers() const { return config_.n_layers; }

  // Moves the frozen base to `device` and computes it in `compute_dtype`
  // (float32, bf16 or fp16): float weights, norms and the embedding are
  // converted, quantized weights keep their codes (FrozenWeight::to). Inputs
  // may come from anywhere: embed() moves the token ids, run_blocks() and
  // head() move hidden states to this device and dtype (differentiably, so
  // a CPU float32 input gets a CPU float32 gradient). Not thread-safe with a
  // running forward pass.
  void to(c10::Device device, c10::ScalarType compute_dtype);
  c10::Device device() const { return device_; }
  c10::ScalarType compute_dtype() const { return compute_dtype_; }

  // tokens: [B, T] int64 -> [B, T, dim]
  at::Tensor embed(const at::Tensor& tokens) const;
  // Blocks [begin, end) on hidden states h: [B, T, dim] at positions pos0.. -> [B, T, dim]
  at::Tensor run_blocks(at::Tensor h, int64_t begin, int64_t end, const LinearAdapters* adapters,
                        int64_t pos0 = 0,
                        BlockActivations activations = BlockActivations::saved) const;
  // Generation: blocks [cache.begin(), cache.end()) on the next T positions
  // of one sequence whose earlier positions are in `cache`, h: [1, T, dim] ->
  // [1, T, dim]; their keys and values join the cache. Without autograd. The
  // one block-range-with-KV-cache forward of local and split generation.
  at::Tensor run_blocks_cached(at::Tensor h, KvCache& cache, const LinearAdapters* adapters) const;
  // Final norm and output projection: [B, T, dim] -> logits [B, T, vocab]
  at::Tensor head(const at::Tensor& h, const LinearAdapters* adapters) const;
  // cross_entropy(head(h, adapters), targets, weights) for training: without
  // an adapter on the output projection it runs chunked_cross_entropy, which
  // never holds the [B, T, vocab] logits (same loss and gradients).
  LossResult head_loss(const at::Tensor& h, const at::Tensor& targets, const at::Tensor& weights,
                       const LinearAdapters* adapters) const;
  // The whole model: tokens [B, T] -> logits [B, T, vocab]
  at::Tensor forward(const at::Tensor& tokens, const LinearAdapters* adapters) const;

  // Every frozen linear layer, in block order, then the output projection.
  std::vector<const FrozenLinear*> linears() const;
  FrozenLinear* find_linear(const std::string& name);
  int64_t frozen_bytes() const;   // memory held by frozen weights, norms and the embedding
  const FrozenWeight& token_embedding() const { return token_embd_; }
  int64_t parameter_count() const;

 private:
  // With a cache, block `layer`'s keys and values of earlier positions come
  // from it and this call's are added (pos0 is then cache->length()).
  at::Tensor block_forward(const LlamaBlock& block, const at::Tensor& h,
                           const LinearAdapters* adapters, int64_t pos0,
                           KvCache* cache = nullptr, int64_t layer = 0) const;

  // The fingerprint of a model built in code: its frozen tensors as float32.
  std::string weights_fingerprint() const;

  LlamaConfig config_;
  std::string base_fingerprint_;
  RopeStyle rope_style_;
  FrozenWeight token_embd_;  // [vocab, dim]
  bool output_shares_embedding_ = false;
  std::vector<LlamaBlock> blocks_;
  at::Tensor output_norm_;   // [dim]
  FrozenLinear output_;      // [vocab, dim]
  c10::Device device_ = c10::Device(c10::DeviceType::CPU);
  c10::ScalarType compute_dtype_ = c10::ScalarType::Float;
};

// RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps) * weight.
// Float32 with a frozen weight runs the fused kernel (model/fused_ops.h).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The SwiGLU activation silu(gate) * up ([..., ffn]); fused for float32.
at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up);

}  // namespace cleave
