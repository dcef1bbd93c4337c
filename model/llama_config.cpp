#include "model/llama_config.h"

#include <set>
#include <sstream>
#include <stdexcept>

#include "model/gguf.h"

namespace cleave {

void LlamaConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("invalid model config: " + what);
  };
  require(vocab_size > 0, "vocab_size must be > 0");
  require(dim > 0, "dim must be > 0");
  require(n_layers > 0, "n_layers must be > 0");
  require(n_heads > 0, "n_heads must be > 0");
  require(n_kv_heads > 0 && n_heads % n_kv_heads == 0,
          "n_heads (" + std::to_string(n_heads) + ") must be a multiple of n_kv_heads (" +
              std::to_string(n_kv_heads) + ")");
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be even and > 0");
  require(rope_dims > 0 && rope_dims <= head_dim && rope_dims % 2 == 0,
          "rope_dims must be even and within head_dim");
  require(ffn_dim > 0, "ffn_dim must be > 0");
  require(norm_eps > 0, "norm_eps must be > 0");
  require(rope_base > 0, "rope_base must be > 0");
}

std::string LlamaConfig::summary() const {
  std::ostringstream out;
  out << architecture << ": dim " << dim << ", " << n_layers << " blocks, " << n_heads << " heads ("
      << n_kv_heads << " kv, head_dim " << head_dim << "), ffn " << ffn_dim << ", vocab "
      << vocab_size << (tied_output ? ", tied output" : "") << (qkv_bias ? ", qkv bias" : "");
  return out.str();
}

LlamaConfig config_from_gguf(const gguf::File& file) {
  static const std::set<std::string> kSupported = {"llama", "qwen2", "mistral", "smollm"};
  LlamaConfig c;
  c.architecture = file.get("general.architecture").as_string();
  if (!kSupported.count(c.architecture)) {
    throw std::runtime_error(file.path() + ": architecture '" + c.architecture +
                             "' is not supported; cleave runs llama-layout decoders "
                             "(llama, qwen2, mistral)");
  }
  const std::string a = c.architecture + ".";
  // get() names a missing key; get_int() the file and key of a mistyped one.
  const auto required_int = [&](const std::string& key) {
    (void)file.get(key);
    return file.get_int(key, 0);
  };
  c.dim = required_int(a + "embedding_length");
  c.n_layers = required_int(a + "block_count");
  c.n_heads = required_int(a + "attention.head_count");
  if (c.n_heads <= 0) {
    throw std::runtime_error(file.path() + ": " + a + "attention.head_count is " + std::to_string(c.n_heads) +
                             ", expected a positive number of attention heads");
  }
  c.n_kv_heads = file.get_int(a + "attention.head_count_kv", c.n_heads);
  c.ffn_dim = required_int(a + "feed_forward_length");
  c.norm_eps = file.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_base = file.get_float(a + "rope.freq_base", 10000.0);
  c.context_length = file.get_int(a + "context_length", 2048);
  c.head_dim = file.get_int(a + "attention.key_length", c.dim / c.n_heads);
  c.rope_dims = file.get_int(a + "rope.dimension_count", c.head_dim);

  const gguf::TensorInfo& embd = file.tensor("token_embd.weight");
  if (embd.ne.size() != 2 || embd.ne[0] != c.dim) {
    throw std::runtime_error(file.path() + ": token_embd.weight has ne[0]=" +
                             std::to_string(embd.ne.empty() ? 0 : embd.ne[0]) +
                             ", expected the embedding length " + std::to_string(c.dim));
  }
  c.vocab_size = embd.ne[1];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  c.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  try {
    c.validate();
  } catch (const std::exception& e) {
    throw std::runtime_error(file.path() + ": " + e.what());
  }
  return c;
}

}  // namespace cleave
