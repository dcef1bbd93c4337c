#include "model/model_loader.h"

#include <ATen/ATen.h>

#include <map>
#include <stdexcept>

#include "model/base_fingerprint.h"
#include "model/gguf.h"
#include "model/gguf_quant.h"

namespace cleave {
namespace {

class TensorReader {
 public:
  TensorReader(std::shared_ptr<const gguf::File> file, BaseQuant quant)
      : file_(std::move(file)), quant_(quant) {}

  const gguf::TensorInfo& info(const std::string& name, std::vector<int64_t> expected_ne) const {
    const gguf::TensorInfo& t = file_->tensor(name);
    if (t.ne != expected_ne) {
      throw std::runtime_error(file_->path() + ": tensor " + name + " has shape " + shape(t.ne) +
                               ", expected " + shape(expected_ne) +
                               ": does the file's metadata match its tensors?");
    }
    if (!gguf::is_supported(t.type)) {
      throw std::runtime_error(file_->path() + ": tensor " + name + " has type " +
                               gguf::type_name(t.type) + ", which cleave cannot read (supported: " +
                               gguf::supported_type_names() +
                               "): requantize the model to one of these with llama-quantize");
    }
    read_.emplace(name, &t);
    return t;
  }

  // A float32 tensor shaped like PyTorch ([out, in] for ne [in, out]).
  at::Tensor as_float(const std::string& name, std::vector<int64_t> expected_ne) const {
    const gguf::TensorInfo& t = info(name, expected_ne);
    std::vector<int64_t> sizes(t.ne.rbegin(), t.ne.rend());
    at::Tensor out = at::empty(sizes, at::kFloat);
    gguf::dequantize(t.type, t.data, out.data_ptr<float>(), t.n_elements());
    return out;
  }

  // A frozen matrix [out, in] for ne [in, out], held as base.quant says:
  // native keeps each block tensor in its own type (the Q5_0 and Q8_0
  // fallbacks of a Q4_K_M file stay Q5_0 and Q8_0); the other modes
  // dequantize it and, for int8 and q4, requantize.
  FrozenWeight weight(const std::string& name, int64_t in, int64_t out) const {
    const gguf::TensorInfo& t = info(name, {in, out});
    const bool is_block_type = gguf::block_size(t.type) > 1;
    if (is_block_type && quant_ == BaseQuant::native) {
      return FrozenWeight::from_ggml(t.type, t.data, out, in, file_);
    }
    return FrozenWeight::from_float(as_float(name, {in, out}), quant_);
  }

  FrozenLinear linear(const std::string& name, int64_t in, int64_t out, bool with_bias) const {
    FrozenLinear l;
    l.name = name;
    l.weight = weight(name, in, out);
    if (with_bias) {
      const std::string bias_name = name.substr(0, name.size() - std::string("weight").size()) + "bias";
      l.bias = as_float(bias_name, {out});
    }
    return l;
  }

  const gguf::File& file() const { return *file_; }

  // The fingerprint of every tensor read so far, as the file stores it
  // (model/base_fingerprint.h): the same whatever `quant` made of them.
  std::string fingerprint(const LlamaConfig& config) const {
    BaseFingerprint fingerprint;
    for (const auto& [name, t] : read_) {
      fingerprint.add(name, static_cast<uint32_t>(t->type), t->ne, t->data, t->nbytes);
    }
    return fingerprint.finish(config);
  }

 private:
  static std::string shape(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
  }
  std::shared_ptr<const gguf::File> file_;
  BaseQuant quant_;
  mutable std::map<std::string, const gguf::TensorInfo*> read_;  // by name: the fingerprint's order
};

}  // namespace

std::shared_ptr<LlamaModel> load_llama(const std::string& path, BaseQuant quant) {
  return load_llama(gguf::File::open(path), quant);
}

std::shared_ptr<LlamaModel> load_llama(std::shared_ptr<const gguf::File> file, BaseQuant quant) {
  const LlamaConfig c = config_from_gguf(*file);
  TensorReader reader(file, quant);
  // Quantized like the blocks: only the rows a batch looks up are dequantized.
  FrozenWeight token_embd = reader.weight("token_embd.weight", c.dim, c.vocab_size);
  std::vector<LlamaBlock> blocks;
  blocks.reserve(c.n_layers);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock b;
    b.attn_norm = reader.as_float(p + "attn_norm.weight", {c.dim});
    b.attn_q = reader.linear(p + "attn_q.weight", c.dim, c.q_dim(), c.qkv_bias);
    b.attn_k = reader.linear(p + "attn_k.weight", c.dim, c.kv_dim(), c.qkv_bias);
    b.attn_v = reader.linear(p + "attn_v.weight", c.dim, c.kv_dim(), c.qkv_bias);
    b.attn_output = reader.linear(p + "attn_output.weight", c.q_dim(), c.dim, false);
    b.ffn_norm = reader.as_float(p + "ffn_norm.weight", {c.dim});
    b.ffn_gate = reader.linear(p + "ffn_gate.weight", c.dim, c.ffn_dim, false);
    b.ffn_up = reader.linear(p + "ffn_up.weight", c.dim, c.ffn_dim, false);
    b.ffn_down = reader.linear(p + "ffn_down.weight", c.ffn_dim, c.dim, false);
    blocks.push_back(std::move(b));
  }
  at::Tensor output_norm = reader.as_float("output_norm.weight", {c.dim});
  FrozenLinear output;
  if (c.tied_output) {
    output.name = "output.weight";
    output.weight = token_embd;  // one tensor for both
  } else {
    output = reader.linear("output.weight", c.dim, c.vocab_size, false);
  }
  return std::make_shared<LlamaModel>(c, token_embd, std::move(blocks), output_norm,
                                      std::move(output), reader.fingerprint(c));
}

}  // namespace cleave
