#include "model/model_writer.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "model/gguf.h"

namespace cleave {

LlamaWeights random_llama_weights(const LlamaConfig& c, uint64_t seed) {
  c.validate();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    return at::empty(shape, at::kFloat).normal_(0.0, 0.02, gen);
  };
  LlamaWeights w;
  w["token_embd.weight"] = normal({c.vocab_size, c.dim});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    w[p + "attn_norm.weight"] = at::ones({c.dim});
    w[p + "attn_q.weight"] = normal({c.q_dim(), c.dim});
    w[p + "attn_k.weight"] = normal({c.kv_dim(), c.dim});
    w[p + "attn_v.weight"] = normal({c.kv_dim(), c.dim});
    w[p + "attn_output.weight"] = normal({c.dim, c.q_dim()});
    w[p + "ffn_norm.weight"] = at::ones({c.dim});
    w[p + "ffn_gate.weight"] = normal({c.ffn_dim, c.dim});
    w[p + "ffn_up.weight"] = normal({c.ffn_dim, c.dim});
    w[p + "ffn_down.weight"] = normal({c.dim, c.ffn_dim});
    if (c.qkv_bias) {
      w[p + "attn_q.bias"] = at::zeros({c.q_dim()});
      w[p + "attn_k.bias"] = at::zeros({c.kv_dim()});
      w[p + "attn_v.bias"] = at::zeros({c.kv_dim()});
    }
  }
  w["output_norm.weight"] = at::ones({c.dim});
  if (!c.tied_output) w["output.weight"] = normal({c.vocab_size, c.dim});
  return w;
}

void set_llama_metadata(gguf::Writer& writer, const LlamaConfig& c) {
  const std::string a = c.architecture + ".";
  writer.set("general.architecture", gguf::Value::str(c.architecture));
  writer.set(a + "context_length", gguf::Value::u32(static_cast<uint32_t>(c.context_length)));
  writer.set(a + "embedding_length", gguf::Value::u32(static_cast<uint32_t>(c.dim)));
  writer.set(a + "block_count", gguf::Value::u32(static_cast<uint32_t>(c.n_layers)));
  writer.set(a + "feed_forward_length", gguf::Value::u32(static_cast<uint32_t>(c.ffn_dim)));
  writer.set(a + "attention.head_count", gguf::Value::u32(static_cast<uint32_t>(c.n_heads)));
  writer.set(a + "attention.head_count_kv", gguf::Value::u32(static_cast<uint32_t>(c.n_kv_heads)));
  writer.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::f32(static_cast<float>(c.norm_eps)));
  writer.set(a + "rope.freq_base", gguf::Value::f32(static_cast<float>(c.rope_base)));
  writer.set(a + "rope.dimension_count", gguf::Value::u32(static_cast<uint32_t>(c.rope_dims)));
  if (c.head_dim != c.dim / c.n_heads) {
    writer.set(a + "attention.key_length", gguf::Value::u32(static_cast<uint32_t>(c.head_dim)));
    writer.set(a + "attention.value_length", gguf::Value::u32(static_cast<uint32_t>(c.head_dim)));
  }
}

void set_tokenizer_metadata(gguf::Writer& writer, const Vocabulary& vocab,
                            const ByteLevelMetadata* byte_level) {
  std::vector<int32_t> kinds;
  for (TokenKind k : vocab.kinds) kinds.push_back(static_cast<int32_t>(k));
  writer.set("tokenizer.ggml.model", gguf::Value::str(byte_level ? "gpt2" : "llama"));
  if (byte_level) writer.set("tokenizer.ggml.pre", gguf::Value::str(byte_level->pre));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(vocab.tokens));
  if (!byte_level) writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(vocab.scores));
  writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(kinds));
  if (byte_level) writer.set("tokenizer.ggml.merges", gguf::Value::str_array(byte_level->merges));
  writer.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(vocab.bos)));
  writer.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(vocab.eos)));
  writer.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(static_cast<uint32_t>(vocab.unk)));
  writer.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(vocab.add_bos));
  if (!byte_level) writer.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(vocab.add_space_prefix));
}

void write_llama_gguf(const std::string& path, const LlamaConfig& c, const LlamaWeights& weights,
                      const Vocabulary* vocab) {
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str(c.architecture));
  writer.set("general.name", gguf::Value::str("cleave " + c.architecture));
  set_llama_metadata(writer, c);
  if (vocab) set_tokenizer_metadata(writer, *vocab);
  for (const auto& [name, tensor] : weights) {
    at::Tensor t = tensor.detach().to(at::kFloat).contiguous();
    std::vector<int64_t> ne(t.sizes().rbegin(), t.sizes().rend());  // ggml order
    writer.add_f32(name, ne, t.data_ptr<float>());
  }
  writer.write(path);
}

}  // namespace cleave
