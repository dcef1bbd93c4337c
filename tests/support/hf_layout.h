// Writing a GGUF model back out in Hugging Face's checkpoint layout
// (config.json, safetensors shards with model.safetensors.index.json), for
// tests of the converter (convert/hf_checkpoint.h). Written independently of
// the code under test: its own name table and its own q/k permutation, the
// direction llama.cpp's converter undoes. Header-only: LibTorch tests only.
#pragma once

#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "lora/safetensors.h"
#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "model/model_writer.h"
#include "util/json.h"

namespace cleave::test {

// Every tensor of a GGUF file as float, PyTorch layout ([out, in]).
inline LlamaWeights read_gguf_weights(const gguf::File& file) {
  LlamaWeights weights;
  for (const gguf::TensorInfo& t : file.tensors()) {
    std::vector<int64_t> sizes(t.ne.rbegin(), t.ne.rend());
    at::Tensor out = at::empty(sizes, at::kFloat);
    gguf::dequantize(t.type, t.data, out.data_ptr<float>(), t.n_elements());
    weights[t.name] = out;
  }
  return weights;
}

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight".
inline std::string hf_name_of(const std::string& gguf_name) {
  static const std::map<std::string, std::string> kBlock = {
      {"attn_norm.weight", "input_layernorm.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},   {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},   {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},       {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},       {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},        {"ffn_down.weight", "mlp.down_proj.weight"}};
  if (gguf_name == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf_name == "output_norm.weight") return "model.norm.weight";
  if (gguf_name == "output.weight") return "lm_head.weight";
  const size_t dot = gguf_name.find('.', 4);  // after "blk.N"
  return "model.layers." + gguf_name.substr(4, dot - 4) + "." + kBlock.at(gguf_name.substr(dot + 1));
}

// GGUF interleaves each head's rotary pairs as rows (2j, 2j + 1); Hugging
// Face keeps them half a head apart (j, j + head_dim/2).
inline at::Tensor gguf_rows_to_hf_layout(const at::Tensor& w, int64_t heads) {
  const int64_t head_dim = w.size(0) / heads;
  std::vector<int64_t> order(static_cast<size_t>(w.size(0)));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < head_dim / 2; ++j) {
      for (int64_t s = 0; s < 2; ++s) order[h * head_dim + s * head_dim / 2 + j] = h * head_dim + 2 * j + s;
    }
  }
  return w.index_select(0, at::tensor(order, at::kLong)).contiguous();
}

struct HfLayoutOptions {
  at::ScalarType second_shard_dtype = at::kFloat;  // kBFloat16 or kHalf: that shard's tensors rounded
  bool write_lm_head_when_tied = false;
};

// Which shard a tensor goes in: the embedding and the first half of the
// blocks in the first, the rest in the second.
inline int shard_of(const std::string& gguf_name, int64_t n_layers) {
  if (gguf_name == "token_embd.weight") return 0;
  if (gguf_name.rfind("blk.", 0) == 0) return std::stoll(gguf_name.substr(4)) < n_layers / 2 ? 0 : 1;
  return 1;
}

// Writes `weights` (GGUF names and layout) of a model with config `c` as a
// Hugging Face checkpoint in `dir`, in two shards. Returns the weights as
// the checkpoint holds them (rounded where the second shard is 16-bit), in
// GGUF names and layout, to build the reference model from.
inline LlamaWeights write_hf_layout(const std::string& dir, const LlamaConfig& c, const LlamaWeights& weights,
                                    const HfLayoutOptions& options = {}) {
  const bool permute = c.architecture == "llama";
  std::vector<std::vector<at::Tensor>> keep(2);  // the bytes safetensors::write reads
  std::vector<std::vector<safetensors::TensorData>> shards(2);
  json::Value weight_map = json::Value::object();
  const std::string names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  LlamaWeights stored;
  for (const auto& [name, tensor] : weights) {
    const int shard = shard_of(name, c.n_layers);
    const at::ScalarType dtype = shard == 1 ? options.second_shard_dtype : at::kFloat;
    at::Tensor w = tensor.to(dtype).contiguous();
    stored[name] = w.to(at::kFloat);
    const bool is_q = name.find("attn_q.") != std::string::npos;
    const bool is_k = name.find("attn_k.") != std::string::npos;
    if (permute && (is_q || is_k)) w = gguf_rows_to_hf_layout(w, is_q ? c.n_heads : c.n_kv_heads);
    keep[shard].push_back(w);
    const std::string hf = hf_name_of(name);
    shards[shard].push_back({hf,
                             dtype == at::kFloat  ? "F32"
                             : dtype == at::kHalf ? "F16"
                                                  : "BF16",
                             std::vector<int64_t>(w.sizes().begin(), w.sizes().end()), w.data_ptr(),
                             static_cast<size_t>(w.nbytes())});
    weight_map.set(hf, names[shard]);
  }
  if (c.tied_output && options.write_lm_head_when_tied) {
    at::Tensor w = weights.at("token_embd.weight").contiguous();
    keep[0].push_back(w);
    shards[0].push_back(
        {"lm_head.weight", "F32", {w.size(0), w.size(1)}, w.data_ptr(), static_cast<size_t>(w.nbytes())});
    weight_map.set("lm_head.weight", names[0]);
  }
  for (int s = 0; s < 2; ++s) safetensors::write(dir + "/" + names[s], shards[s], {{"format", "pt"}});
  json::Value index = json::Value::object();
  index.set("metadata", json::Value::object());
  index.set("weight_map", weight_map);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);

  json::Value config = json::Value::object();
  config.set("architectures",
             json::Array{c.architecture == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"});
  config.set("model_type", c.architecture);
  config.set("hidden_size", c.dim);
  config.set("intermediate_size", c.ffn_dim);
  config.set("num_hidden_layers", c.n_layers);
  config.set("num_attention_heads", c.n_heads);
  config.set("num_key_value_heads", c.n_kv_heads);
  config.set("rms_norm_eps", c.norm_eps);
  config.set("rope_theta", c.rope_base);
  config.set("max_position_embeddings", c.context_length);
  config.set("vocab_size", c.vocab_size);
  config.set("tie_word_embeddings", c.tied_output);
  config.set("hidden_act", "silu");
  config.set("rope_scaling", nullptr);
  config.set("torch_dtype", options.second_shard_dtype == at::kBFloat16 ? "bfloat16" : "float32");
  std::ofstream(dir + "/config.json") << config.dump(2);
  return stored;
}

}  // namespace cleave::test
