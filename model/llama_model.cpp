#include "model/llama_model.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <tuple>

#include <functional>
#include <map>

#include "model/base_fingerprint.h"
#include "model/fused_ops.h"
#include "model/recompute.h"

namespace cleave {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && !weight.requires_grad() &&
      x.device().is_cpu()) {
    return fused_rms_norm(x, weight, eps);
  }
  if (x.scalar_type() != at::kFloat) {
    // bf16/fp16: the mean of squares in float32, as HF's LlamaRMSNorm does
    const at::Tensor xf = x.to(at::kFloat);
    return (xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type()) * weight;
  }
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up) {
  if (gate.scalar_type() == at::kFloat && up.scalar_type() == at::kFloat && gate.device().is_cpu()) {
    return fused_swiglu(gate, up);
  }
  return at::silu(gate) * up;
}

LlamaModel::LlamaModel(LlamaConfig config, FrozenWeight token_embd, std::vector<LlamaBlock> blocks,
                       at::Tensor output_norm, FrozenLinear output, std::string base_fingerprint)
    : config_(std::move(config)),
      base_fingerprint_(std::move(base_fingerprint)),
      rope_style_(config_.rope_rotates_halves() ? RopeStyle::halves : RopeStyle::adjacent_pairs),
      token_embd_(std::move(token_embd)),
      blocks_(std::move(blocks)),
      output_norm_(std::move(output_norm)),
      output_(std::move(output)) {
  config_.validate();
  output_shares_embedding_ = output_.weight.shares_data_with(token_embd_);
  if (token_embd_.out_features() != config_.vocab_size || token_embd_.in_features() != config_.dim) {
    throw std::invalid_argument("token embedding is " + token_embd_.describe() + ", config says [" +
                                std::to_string(config_.vocab_size) + ", " +
                                std::to_string(config_.dim) + "]");
  }
  if (static_cast<int64_t>(blocks_.size()) != config_.n_layers) {
    throw std::invalid_argument("model has " + std::to_string(blocks_.size()) +
                                " blocks, config says " + std::to_string(config_.n_layers));
  }
  if (base_fingerprint_.empty()) base_fingerprint_ = weights_fingerprint();
}

void LlamaModel::to(c10::Device device, c10::ScalarType compute_dtype) {
  if (!at::isFloatingType(compute_dtype)) {
    throw std::invalid_argument(std::string("the model computes in a floating dtype, not ") +
                                c10::toString(compute_dtype));
  }
  auto move = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(device, compute_dtype);
  };
  token_embd_.to(device, compute_dtype);
  move(output_norm_);
  for (LlamaBlock& b : blocks_) {
    move(b.attn_norm);
    move(b.ffn_norm);
    for (FrozenLinear* l : {&b.attn_q, &b.attn_k, &b.attn_v, &b.attn_output, &b.ffn_gate, &b.ffn_up,
                            &b.ffn_down}) {
      l->weight.to(device, compute_dtype);
      move(l->bias);
    }
  }
  if (output_shares_embedding_) {
    output_.weight = token_embd_;  // stay one tensor
  } else {
    output_.weight.to(device, compute_dtype);
  }
  move(output_.bias);
  device_ = device;
  compute_dtype_ = compute_dtype;
}

at::Tensor LlamaModel::embed(const at::Tensor& tokens) const {
  return token_embd_.gather_rows(tokens.to(device_));  // [B, T, dim]
}

at::Tensor LlamaModel::block_forward(const LlamaBlock& block, const at::Tensor& h,
                                     const LinearAdapters* adapters, int64_t pos0, KvCache* cache,
                                     int64_t layer) const {
  const int64_t B = h.size(0), T = h.size(1);
  const int64_t hd = config_.head_dim;
  at::Tensor x = rms_norm(h, block.attn_norm, config_.norm_eps);            // [B, T, dim]
  at::Tensor q = block.attn_q.forward(x, adapters).view({B, T, config_.n_heads, hd});
  at::Tensor k = block.attn_k.forward(x, adapters).view({B, T, config_.n_kv_heads, hd});
  at::Tensor v = block.attn_v.forward(x, adapters).view({B, T, config_.n_kv_heads, hd});
  q = apply_rope(q, pos0, config_.rope_dims, config_.rope_base, rope_style_);
  k = apply_rope(k, pos0, config_.rope_dims, config_.rope_base, rope_style_);
  if (cache) std::tie(k, v) = cache->append(layer, k, v);  // [1, S, kv_heads, hd], S = cached + T
  at::Tensor attn = causal_attention(q, k, v).view({B, T, config_.q_dim()});  // [B, T, q_dim]
  at::Tensor h1 = h + block.attn_output.forward(attn, adapters);

  at::Tensor y = rms_norm(h1, block.ffn_norm, config_.norm_eps);
  at::Tensor gate = block.ffn_gate.forward(y, adapters);                   // [B, T, ffn]
  at::Tensor up = block.ffn_up.forward(y, adapters);
  return h1 + block.ffn_down.forward(swiglu(gate, up), adapters);         // [B, T, dim]
}

at::Tensor LlamaModel::run_blocks(at::Tensor h, int64_t begin, int64_t end,
                                  const LinearAdapters* adapters, int64_t pos0,
                                  BlockActivations activations) const {
  if (begin < 0 || end > config_.n_layers || begin > end) {
    throw std::out_of_range("block range [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") is outside the model's " + std::to_string(config_.n_layers) +
                            " blocks");
  }
  h = h.to(device_, compute_dtype_);  // e.g. smashed activations from the wire (CPU float32)
  for (int64_t i = begin; i < end; ++i) {
    const LlamaBlock& block = blocks_[i];
    if (activations == BlockActivations::saved) {
      h = block_forward(block, h, adapters, pos0);
      continue;
    }
    std::vector<at::Tensor> adapter_parameters;
    if (adapters) {
      for (const FrozenLinear* l : {&block.attn_q, &block.attn_k, &block.attn_v, &block.attn_output,
                                    &block.ffn_gate, &block.ffn_up, &block.ffn_down}) {
        for (at::Tensor& p : adapters->parameters_of(l->name)) adapter_parameters.push_back(p);
      }
    }
    h = run_recomputed(
        [this, &block, adapters, pos0](const at::Tensor& x) { return block_forward(block, x, adapters, pos0); },
        h, adapter_parameters);
  }
  return h;
}

at::Tensor LlamaModel::run_blocks_cached(at::Tensor h, KvCache& cache, const LinearAdapters* adapters) const {
  if (cache.end() > config_.n_layers) {
    throw std::out_of_range("KV cache for blocks up to " + std::to_string(cache.end()) + " but the model has " +
                            std::to_string(config_.n_layers));
  }
  at::NoGradGuard no_grad;
  h = h.to(device_, compute_dtype_);  // [1, T, dim]
  const int64_t pos0 = cache.length();
  for (int64_t i = cache.begin(); i < cache.end(); ++i) {
    h = block_forward(blocks_[i], h, adapters, pos0, &cache, i);
  }
  cache.advance(h.size(1));
  return h;
}

at::Tensor LlamaModel::head(const at::Tensor& h, const LinearAdapters* adapters) const {
  return output_.forward(rms_norm(h.to(device_, compute_dtype_), output_norm_, config_.norm_eps),
                         adapters);
}

LossResult LlamaModel::head_loss(const at::Tensor& h, const at::Tensor& targets,
                                 const at::Tensor& weights, const LinearAdapters* adapters) const {
  if (adapters && adapters->adapts(output_.name)) {
    return cross_entropy(head(h, adapters), targets, weights);
  }
  return chunked_cross_entropy(rms_norm(h.to(device_, compute_dtype_), output_norm_, config_.norm_eps),
                               output_, targets, weights);
}

at::Tensor LlamaModel::forward(const at::Tensor& tokens, const LinearAdapters* adapters) const {
  return head(run_blocks(embed(tokens), 0, config_.n_layers, adapters), adapters);
}

std::vector<const FrozenLinear*> LlamaModel::linears() const {
  std::vector<const FrozenLinear*> out;
  for (const LlamaBlock& b : blocks_) {
    for (const FrozenLinear* l : {&b.attn_q, &b.attn_k, &b.attn_v, &b.attn_output, &b.ffn_gate,
                                  &b.ffn_up, &b.ffn_down}) {
      out.push_back(l);
    }
  }
  out.push_back(&output_);
  return out;
}

FrozenLinear* LlamaModel::find_linear(const std::string& name) {
  for (const FrozenLinear* l : linears()) {
    if (l->name == name) return const_cast<FrozenLinear*>(l);
  }
  return nullptr;
}

int64_t LlamaModel::frozen_bytes() const {
  int64_t bytes = token_embd_.bytes() + output_norm_.nbytes();
  for (const LlamaBlock& b : blocks_) bytes += b.attn_norm.nbytes() + b.ffn_norm.nbytes();
  for (const FrozenLinear* l : linears()) {
    if (!(l == &output_ && output_shares_embedding_)) bytes += l->weight.bytes();
  }
  return bytes;
}

int64_t LlamaModel::parameter_count() const {
  int64_t n = token_embd_.out_features() * token_embd_.in_features() + output_norm_.numel();
  for (const LlamaBlock& b : blocks_) n += b.attn_norm.numel() + b.ffn_norm.numel();
  for (const FrozenLinear* l : linears()) {
    if (!(config_.tied_output && l == &output_)) {
      n += l->weight.out_features() * l->weight.in_features();
    }
  }
  return n;
}

std::string LlamaModel::weights_fingerprint() const {
  // By name, as the loader hashes a file; each weight becomes float32 only
  // while it is hashed.
  std::map<std::string, std::function<at::Tensor()>> tensors;
  auto add_linear = [&](const FrozenLinear& l) {
    tensors[l.name] = [&l] { return l.weight.dequantize(); };
    if (l.bias.defined()) {
      tensors[l.name.substr(0, l.name.size() - std::string("weight").size()) + "bias"] = [&l] { return l.bias; };
    }
  };
  tensors["token_embd.weight"] = [this] { return token_embd_.dequantize(); };
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const LlamaBlock& b = blocks_[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    tensors[p + "attn_norm.weight"] = [&b] { return b.attn_norm; };
    tensors[p + "ffn_norm.weight"] = [&b] { return b.ffn_norm; };
    for (const FrozenLinear* l : {&b.attn_q, &b.attn_k, &b.attn_v, &b.attn_output, &b.ffn_gate, &b.ffn_up,
                                  &b.ffn_down}) {
      add_linear(*l);
    }
  }
  tensors["output_norm.weight"] = [this] { return output_norm_; };
  if (!output_shares_embedding_) add_linear(output_);

  BaseFingerprint fingerprint;
  for (const auto& [name, values] : tensors) {
    const at::Tensor t = values().to(at::kCPU, at::kFloat).contiguous();
    const std::vector<int64_t> ne(t.sizes().rbegin(), t.sizes().rend());  // ggml order
    fingerprint.add(name, static_cast<uint32_t>(gguf::TensorType::F32), ne, t.data_ptr(),
                    static_cast<uint64_t>(t.numel()) * sizeof(float));
  }
  return fingerprint.finish(config_);
}

}  // namespace cleave
