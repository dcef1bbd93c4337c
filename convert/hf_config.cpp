#include "convert/hf_config.h"

#include <stdexcept>

#include "model/json_file.h"
#include "util/json.h"

namespace cleave::convert {
namespace {

// config.json: its top-level keys, typed, with errors naming the file and key.
struct ConfigFile : JsonFile {
  const json::Value* find(const std::string& key) const {
    const json::Value* value = root.find(key);
    return value == nullptr || value->is_null() ? nullptr : value;
  }

  int64_t positive_int(const std::string& key) const {
    const json::Value* value = find(key);
    if (value == nullptr) fail(key, "is missing");
    if (!value->is_integer() || value->as_int() <= 0) fail(key, "is not a positive integer");
    return value->as_int();
  }

  int64_t positive_int(const std::string& key, int64_t fallback) const {
    return find(key) ? positive_int(key) : fallback;
  }

  double positive_number(const std::string& key, double fallback) const {
    const json::Value* value = find(key);
    if (value == nullptr) return fallback;
    if (!value->is_number() || value->as_double() <= 0) fail(key, "is not a positive number");
    return value->as_double();
  }

  bool flag(const std::string& key, bool fallback) const {
    const json::Value* value = find(key);
    if (value == nullptr) return fallback;
    if (!value->is_bool()) fail(key, "is not true or false");
    return value->as_bool();
  }

  std::string text(const std::string& key) const {
    const json::Value* value = find(key);
    if (value == nullptr) return "";
    if (!value->is_string()) fail(key, "is not a string");
    return value->as_string();
  }
};

}  // namespace

HfModelConfig read_hf_config(const std::string& path) {
  const ConfigFile file{JsonFile::read(path)};

  HfModelConfig hf;
  if (const json::Value* names = file.find("architectures")) {
    if (!names->is_array() || names->size() != 1 || !(*names)[0].is_string()) {
      file.fail("architectures", "is not a list of one name");
    }
    hf.hf_architecture = (*names)[0].as_string();
  } else {
    const std::string model_type = file.text("model_type");
    if (model_type == "llama") hf.hf_architecture = "LlamaForCausalLM";
    if (model_type == "qwen2") hf.hf_architecture = "Qwen2ForCausalLM";
    if (hf.hf_architecture.empty())
      file.fail("architectures", "is missing, and model_type is not llama or qwen2");
  }
  LlamaConfig& c = hf.config;
  if (hf.hf_architecture == "LlamaForCausalLM") {
    c.architecture = "llama";
    if (file.flag("attention_bias", false)) {
      file.fail("attention_bias",
                "is true; cleave's Llama attention has no biases (its o_proj would need one)");
    }
  } else if (hf.hf_architecture == "Qwen2ForCausalLM") {
    c.architecture = "qwen2";
    c.qkv_bias = true;
    if (file.flag("use_sliding_window", false)) {
      file.fail("use_sliding_window", "is true; cleave attends over the whole context");
    }
  } else {
    file.fail("architectures", "is '" + hf.hf_architecture +
                                   "'; cleave converts LlamaForCausalLM (Llama, SmolLM) and "
                                   "Qwen2ForCausalLM checkpoints");
  }

  c.dim = file.positive_int("hidden_size");
  c.ffn_dim = file.positive_int("intermediate_size");
  c.n_layers = file.positive_int("num_hidden_layers");
  c.n_heads = file.positive_int("num_attention_heads");
  c.n_kv_heads = file.positive_int("num_key_value_heads", c.n_heads);
  c.vocab_size = file.positive_int("vocab_size");
  c.context_length = file.positive_int("max_position_embeddings", 2048);
  c.norm_eps = file.positive_number("rms_norm_eps", 1e-6);  // Hugging Face's default
  c.rope_base = file.positive_number("rope_theta", 10000.0);
  if (c.dim % c.n_heads != 0 && !file.find("head_dim")) {
    file.fail("hidden_size", std::to_string(c.dim) + " is not a multiple of num_attention_heads " +
                                 std::to_string(c.n_heads) + ", and there is no head_dim");
  }
  c.head_dim = file.positive_int("head_dim", c.dim / c.n_heads);
  c.rope_dims = c.head_dim;
  c.tied_output = file.flag("tie_word_embeddings", false);
  hf.torch_dtype = file.text("torch_dtype");

  // What cleave would compute differently from Hugging Face, refused.
  if (file.find("rope_scaling")) {
    file.fail("rope_scaling",
              "is set; cleave's RoPE has no frequency scaling, so it would not "
              "reproduce this model");
  }
  const std::string act = file.text("hidden_act");
  if (!act.empty() && act != "silu")
    file.fail("hidden_act", "is '" + act + "'; cleave's feed-forward uses SiLU");
  if (file.flag("mlp_bias", false)) file.fail("mlp_bias", "is true; cleave's feed-forward has no biases");
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return hf;
}

}  // namespace cleave::convert
