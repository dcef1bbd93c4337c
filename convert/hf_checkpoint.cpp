#include "convert/hf_checkpoint.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <vector>

#include "convert/hf_config.h"
#include "convert/hf_tokenizer.h"
#include "lora/adapter_peft.h"
#include "lora/safetensors.h"
#include "model/gguf_quant.h"
#include "model/model_writer.h"
#include "util/json.h"

namespace cleave::convert {
namespace {

namespace fs = std::filesystem;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Where a Hugging Face tensor goes: its GGUF name, the shape config.json
// implies (PyTorch order, [out, in]) with the fields that imply it, and the
// heads whose q/k rows are permuted (0: none).
struct Target {
  std::string gguf_name;
  std::vector<int64_t> shape;
  std::string fields;
  int64_t permute_heads = 0;
};

// The Hugging Face name -> Target table of one model, every tensor it must have.
std::map<std::string, Target> expected_tensors(const LlamaConfig& c) {
  const bool permute = !c.rope_rotates_halves();  // llama: GGUF pairs adjacent rows
  const std::string dim = "hidden_size " + std::to_string(c.dim);
  const std::string vocab = "vocab_size " + std::to_string(c.vocab_size);
  const std::string ffn = "intermediate_size " + std::to_string(c.ffn_dim);
  const std::string q =
      "num_attention_heads " + std::to_string(c.n_heads) + " x head_dim " + std::to_string(c.head_dim);
  const std::string kv =
      "num_key_value_heads " + std::to_string(c.n_kv_heads) + " x head_dim " + std::to_string(c.head_dim);
  std::map<std::string, Target> t;
  t["model.embed_tokens.weight"] = {"token_embd.weight", {c.vocab_size, c.dim}, vocab + ", " + dim};
  t["model.norm.weight"] = {"output_norm.weight", {c.dim}, dim};
  if (!c.tied_output) t["lm_head.weight"] = {"output.weight", {c.vocab_size, c.dim}, vocab + ", " + dim};
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string gg = "blk." + std::to_string(i) + ".";
    t[hf + "input_layernorm.weight"] = {gg + "attn_norm.weight", {c.dim}, dim};
    t[hf + "post_attention_layernorm.weight"] = {gg + "ffn_norm.weight", {c.dim}, dim};
    // The projections by the names PEFT export gives them (one mapping for both).
    const auto projection = [&](const std::string& gguf_leaf, std::vector<int64_t> shape,
                                const std::string& fields, int64_t heads) {
      const std::string gguf_name = gg + gguf_leaf + ".weight";
      t[lora::peft_module_of(gguf_name) + ".weight"] = {gguf_name, std::move(shape), fields, heads};
    };
    projection("attn_q", {c.q_dim(), c.dim}, q + ", " + dim, permute ? c.n_heads : 0);
    projection("attn_k", {c.kv_dim(), c.dim}, kv + ", " + dim, permute ? c.n_kv_heads : 0);
    projection("attn_v", {c.kv_dim(), c.dim}, kv + ", " + dim, 0);
    projection("attn_output", {c.dim, c.q_dim()}, dim + ", " + q, 0);
    projection("ffn_gate", {c.ffn_dim, c.dim}, ffn + ", " + dim, 0);
    projection("ffn_up", {c.ffn_dim, c.dim}, ffn + ", " + dim, 0);
    projection("ffn_down", {c.dim, c.ffn_dim}, dim + ", " + ffn, 0);
    if (c.qkv_bias) {
      t[hf + "self_attn.q_proj.bias"] = {gg + "attn_q.bias", {c.q_dim()}, q, permute ? c.n_heads : 0};
      t[hf + "self_attn.k_proj.bias"] = {gg + "attn_k.bias", {c.kv_dim()}, kv, permute ? c.n_kv_heads : 0};
      t[hf + "self_attn.v_proj.bias"] = {gg + "attn_v.bias", {c.kv_dim()}, kv};
    }
  }
  return t;
}

// Tensors a checkpoint may carry that a GGUF model does not need: RoPE's
// inverse frequencies (recomputed from rope_theta) and, for a tied model, the
// lm_head copy of the embedding.
bool is_skipped(const std::string& name, const LlamaConfig& c) {
  static const std::regex kInvFreq(R"(model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq)");
  return std::regex_match(name, kInvFreq) || (c.tied_output && name == "lm_head.weight");
}

// Hugging Face keeps each head's rotary pairs (i, i + head_dim/2) half a head
// apart; GGUF `llama` files interleave them. Rows are moved whole, so any
// dtype goes through lora::hf_rows_to_gguf as [rows, row_bytes] bytes.
std::vector<uint8_t> permute_rows(const std::vector<uint8_t>& bytes, int64_t rows, int64_t heads) {
  const auto row_bytes = static_cast<int64_t>(bytes.size()) / rows;
  at::Tensor in = at::from_blob(const_cast<uint8_t*>(bytes.data()), {rows, row_bytes}, at::kByte);
  const at::Tensor out = lora::hf_rows_to_gguf(in, heads);
  const auto* p = out.data_ptr<uint8_t>();
  return std::vector<uint8_t>(p, p + bytes.size());
}

gguf::TensorType gguf_type(const safetensors::TensorView& t, const std::string& shard) {
  if (t.dtype == "F32") return gguf::TensorType::F32;
  if (t.dtype == "F16") return gguf::TensorType::F16;
  if (t.dtype == "BF16") return gguf::TensorType::BF16;
  throw std::runtime_error(shard + ": tensor " + t.name + " has dtype " + t.dtype +
                           "; cleave converts F32, F16 and BF16 checkpoints");
}

// The safetensors files of the checkpoint, in order, and for a sharded one
// the shard model.safetensors.index.json's weight_map gives each tensor.
struct Shards {
  std::vector<std::string> files;
  std::map<std::string, std::string> shard_of;  // empty for a single file
  std::string index_path;
};

Shards find_shards(const std::string& dir) {
  Shards shards;
  const std::string index = dir + "/model.safetensors.index.json";
  const std::string single = dir + "/model.safetensors";
  if (!fs::exists(index)) {
    if (!fs::exists(single)) {
      throw std::runtime_error(dir +
                               ": no model.safetensors or model.safetensors.index.json; cleave "
                               "converts safetensors checkpoints (save a PyTorch .bin one with "
                               "save_pretrained(..., safe_serialization=True))");
    }
    shards.files.push_back(single);
    return shards;
  }
  shards.index_path = index;
  const json::Value root = json::parse_file(index);
  const json::Value* map = root.is_object() ? root.find("weight_map") : nullptr;
  if (map == nullptr || !map->is_object()) {
    throw std::runtime_error(index + ": weight_map is missing or not an object of tensor to file");
  }
  std::set<std::string> seen;
  for (const auto& [tensor, file] : map->as_object()) {
    if (!file.is_string())
      throw std::runtime_error(index + ": weight_map[\"" + tensor + "\"] is not a file name");
    const std::string& name = file.as_string();
    if (name.empty() || name.find('/') != std::string::npos) {
      throw std::runtime_error(index + ": weight_map[\"" + tensor + "\"] = '" + name +
                               "' is not a file name in the checkpoint's directory");
    }
    const std::string path = dir + "/" + name;
    shards.shard_of[tensor] = path;
    if (seen.insert(name).second) {
      if (!fs::is_regular_file(path)) {
        throw std::runtime_error(index + ": weight_map names " + name + " (for " + tensor +
                                 "), which is not in " + dir);
      }
      shards.files.push_back(path);
    }
  }
  if (shards.files.empty()) throw std::runtime_error(index + ": weight_map is empty");
  return shards;
}

// Adds every tensor of every shard to `writer`, mapped, checked and
// permuted; throws for anything unknown, misshapen or missing.
void add_tensors(gguf::Writer& writer, const std::string& dir, const std::string& config_path,
                 const LlamaConfig& c) {
  std::map<std::string, Target> expected = expected_tensors(c);
  const Shards shards = find_shards(dir);
  std::set<std::string> converted;
  for (const std::string& shard_path : shards.files) {
    const safetensors::File shard = safetensors::File::read(shard_path);
    for (const safetensors::TensorView& t : shard.tensors()) {
      if (!shards.shard_of.empty()) {
        const auto listed = shards.shard_of.find(t.name);
        if (listed == shards.shard_of.end() || listed->second != shard_path) {
          throw std::runtime_error(shard_path + ": tensor " + t.name + " is not where " + shards.index_path +
                                   "'s weight_map puts it");
        }
      }
      if (is_skipped(t.name, c)) continue;
      const auto target_it = expected.find(t.name);
      if (target_it == expected.end()) {
        throw std::runtime_error(
            shard_path + ": tensor " + t.name + " is not one cleave maps to GGUF (it maps " +
            "model.embed_tokens, model.layers.N.{input,post_attention}_layernorm, "
            "model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, "
            "model.norm and lm_head, for N below config.json's num_hidden_layers " +
            std::to_string(c.n_layers) + (c.qkv_bias ? ", with q/k/v biases" : "") + ")");
      }
      const Target& target = target_it->second;
      if (t.shape != target.shape) {
        throw std::runtime_error(shard_path + ": tensor " + t.name + " has shape " + shape_text(t.shape) +
                                 ", but " + config_path + " (" + target.fields + ") makes it " +
                                 shape_text(target.shape));
      }
      if (!converted.insert(t.name).second) {
        throw std::runtime_error(shard_path + ": tensor " + t.name + " is in the checkpoint twice");
      }
      gguf::TensorType type = gguf_type(t, shard_path);
      std::vector<uint8_t> bytes(t.data, t.data + t.bytes);
      if (t.shape.size() == 1 && type != gguf::TensorType::F32) {  // norms and biases as F32, as llama.cpp
        std::vector<uint8_t> wide(static_cast<size_t>(t.shape[0]) * sizeof(float));
        gguf::dequantize(type, bytes.data(), reinterpret_cast<float*>(wide.data()), t.shape[0]);
        bytes = std::move(wide);
        type = gguf::TensorType::F32;
      }
      const int64_t rows = t.shape[0];
      if (target.permute_heads > 0) {
        bytes = permute_rows(bytes, rows, target.permute_heads);
      }
      const std::vector<int64_t> ne(target.shape.rbegin(), target.shape.rend());  // ggml order
      writer.add_tensor(target.gguf_name, type, ne, bytes.data(), bytes.size());
    }
  }
  for (const auto& [name, target] : expected) {
    if (!converted.count(name)) {
      throw std::runtime_error(dir + ": the checkpoint has no tensor " + name + " (" + target.gguf_name +
                               "), which " + config_path + " implies" +
                               (name == "lm_head.weight" ? " with tie_word_embeddings false" : ""));
    }
  }
}

}  // namespace

bool is_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "config.json", ec);
}

gguf::Writer hf_to_gguf(const std::string& dir, const HfImportOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a directory");
  const std::string config_path = dir + "/config.json";
  if (!fs::is_regular_file(config_path, ec)) {
    throw std::runtime_error(dir +
                             ": no config.json: a Hugging Face checkpoint directory holds "
                             "config.json, model.safetensors (or shards) and tokenizer.json");
  }
  const HfModelConfig hf = read_hf_config(config_path);
  const LlamaConfig& c = hf.config;

  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str(c.architecture));
  fs::path name = fs::absolute(dir).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "dir/"
  writer.set("general.name", gguf::Value::str(name.filename().string()));
  set_llama_metadata(writer, c);
  if (options.vocab_gguf) {
    copy_tokenizer_metadata(writer, *gguf::File::open(*options.vocab_gguf), c.vocab_size);
  } else {
    add_tokenizer_json_metadata(writer, dir, c.vocab_size);
  }
  add_tensors(writer, dir, config_path, c);
  return writer;
}

std::shared_ptr<const gguf::File> open_hf_checkpoint(const std::string& dir, const HfImportOptions& options) {
  std::vector<uint8_t> image = hf_to_gguf(dir, options).to_bytes();  // the writer's copy is freed here
  return gguf::File::from_bytes(dir + " (Hugging Face)", std::move(image));
}

}  // namespace cleave::convert
