#include "lora/adapter_peft.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>

#include "lora/adapter_gguf.h"
#include "lora/safetensors.h"
#include "model/llama_model.h"
#include "util/atomic_file.h"
#include "util/json.h"

namespace cleave::lora {
namespace {

constexpr const char* kKeyPrefix = "base_model.model.";
constexpr const char* kFingerprintKey = "cleave.base.fingerprint";
const char* const kIsThisTheBase = ": is this the base model the adapter was trained on?";

// GGUF block tensor -> HF module path under "model.layers.<i>.".
const std::vector<std::pair<std::string, std::string>>& module_table() {
  static const std::vector<std::pair<std::string, std::string>> kModules = {
      {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},  {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  return kModules;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "model.layers.3.self_attn.q_proj" -> "q_proj": the name in target_modules.
std::string module_leaf(const std::string& module) { return module.substr(module.rfind('.') + 1); }

const FrozenLinear& base_linear(const LlamaModel& model, const std::string& base_name,
                                const std::string& where) {
  // find_linear only looks up; it is non-const because training code mutates layers.
  const FrozenLinear* linear = const_cast<LlamaModel&>(model).find_linear(base_name);
  if (!linear) {
    throw std::runtime_error(where + ": adapter targets " + base_name +
                             ", which the base model lacks" + kIsThisTheBase);
  }
  return *linear;
}

void check_pair_fits(const FrozenLinear& linear, const at::Tensor& a, const at::Tensor& b,
                     const std::string& where, const std::string& name) {
  const int64_t in = linear.weight.in_features(), out = linear.weight.out_features();
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != in || b.size(0) != out || a.size(0) != b.size(1)) {
    throw std::runtime_error(where + ": adapter for " + name + " has lora_A " + c10::str(a.sizes()) +
                             " and lora_B " + c10::str(b.sizes()) + ", expected [r, " +
                             std::to_string(in) + "] and [" + std::to_string(out) + ", r]" +
                             kIsThisTheBase);
  }
}

// A whole number as a JSON integer (PEFT types r and usually lora_alpha as int).
json::Value number(double x) {
  if (std::nearbyint(x) == x && std::fabs(x) < 9e15) return json::Value(static_cast<int64_t>(x));
  return json::Value(x);
}

json::Value peft_config(const AdapterSet& adapters, int64_t rank, const std::set<std::string>& modules,
                        const std::set<int64_t>& layers, int64_t n_layers,
                        const std::string& base_model_name_or_path) {
  json::Array target_modules(modules.begin(), modules.end());
  json::Value layers_to_transform;  // null: every block
  if (static_cast<int64_t>(layers.size()) != n_layers && !layers.empty()) {
    layers_to_transform = json::Value(json::Array(layers.begin(), layers.end()));
  }
  // Keys sorted, as PEFT's save_pretrained writes them; only keys LoraConfig knows.
  json::Value config = json::Value::object();
  config.set("alpha_pattern", json::Value::object());
  config.set("base_model_name_or_path", base_model_name_or_path.empty()
                                            ? json::Value()
                                            : json::Value(base_model_name_or_path));
  config.set("bias", "none");
  config.set("fan_in_fan_out", false);
  config.set("inference_mode", true);
  config.set("init_lora_weights", true);
  config.set("layers_pattern", json::Value());
  config.set("layers_to_transform", std::move(layers_to_transform));
  config.set("lora_alpha", number(adapters.options().alpha));
  config.set("lora_dropout", adapters.options().dropout);
  config.set("modules_to_save", json::Value());
  config.set("peft_type", "LORA");
  config.set("r", rank);
  config.set("rank_pattern", json::Value::object());
  config.set("revision", json::Value());
  config.set("target_modules", json::Value(std::move(target_modules)));
  config.set("task_type", "CAUSAL_LM");
  config.set("use_dora", false);
  config.set("use_rslora", false);
  return config;
}

// The adapter_config.json fields import needs, checked.
struct PeftConfig {
  int64_t r = 0;
  double alpha = 0;
  double dropout = 0;
  bool rslora = false;
};

PeftConfig read_peft_config(const std::string& path) {
  const json::Value config = json::parse_file(path);
  if (!config.is_object()) throw std::runtime_error(path + ": expected a JSON object");
  auto field = [&](const char* key) -> const json::Value& {
    const json::Value* v = config.find(key);
    if (!v) throw std::runtime_error(path + ": missing \"" + key + "\"");
    return *v;
  };
  auto fail = [&](const std::string& what) -> void { throw std::runtime_error(path + ": " + what); };
  auto is_true = [&](const char* key) {
    const json::Value* v = config.find(key);
    return v && v->is_bool() && v->as_bool();
  };
  auto non_empty_object = [&](const char* key) {
    const json::Value* v = config.find(key);
    return v && v->is_object() && v->size() > 0;
  };

  const json::Value& type = field("peft_type");
  if (!type.is_string() || type.as_string() != "LORA") {
    fail("peft_type is " + type.dump() + ", expected \"LORA\": cleave imports LoRA adapters only");
  }
  if (is_true("use_dora")) fail("use_dora is true: DoRA adapters cannot be imported as plain LoRA");
  if (is_true("fan_in_fan_out")) {
    fail("fan_in_fan_out is true (GPT-2 Conv1D layout): cleave expects Llama's nn.Linear layout");
  }
  if (const json::Value* bias = config.find("bias"); bias && !(bias->is_string() && bias->as_string() == "none")) {
    fail("bias is " + bias->dump() + ": cleave's LoRA has no bias terms, expected \"none\"");
  }
  if (non_empty_object("rank_pattern") || non_empty_object("alpha_pattern")) {
    fail("rank_pattern/alpha_pattern give modules their own rank or alpha: cleave needs one r and alpha");
  }
  if (const json::Value* m = config.find("modules_to_save"); m && !m->is_null() && m->size() > 0) {
    fail("modules_to_save lists fully trained modules: cleave imports LoRA A/B only");
  }
  PeftConfig out;
  const json::Value& r = field("r");
  if (!r.is_integer() || r.as_int() <= 0) fail("r must be a positive integer, got " + r.dump());
  out.r = r.as_int();
  const json::Value& alpha = field("lora_alpha");
  if (!alpha.is_number()) fail("lora_alpha must be a number, got " + alpha.dump());
  out.alpha = alpha.as_double();
  if (const json::Value* dropout = config.find("lora_dropout")) {
    if (!dropout->is_number()) fail("lora_dropout must be a number, got " + dropout->dump());
    out.dropout = dropout->as_double();
  }
  out.rslora = is_true("use_rslora");
  return out;
}

// A 2-D F32/F16/BF16 safetensors tensor as float [rows, cols].
at::Tensor to_float_matrix(const safetensors::TensorView& t, const std::string& where) {
  at::ScalarType type;
  if (t.dtype == "F32") {
    type = at::kFloat;
  } else if (t.dtype == "F16") {
    type = at::kHalf;
  } else if (t.dtype == "BF16") {
    type = at::kBFloat16;
  } else {
    throw std::runtime_error(where + ": tensor " + t.name + " has dtype " + t.dtype +
                             "; expected F32, F16 or BF16");
  }
  if (t.shape.size() != 2) {
    throw std::runtime_error(where + ": tensor " + t.name + " must be 2-D, has " +
                             std::to_string(t.shape.size()) + " dimensions");
  }
  at::Tensor raw = at::empty({t.shape[0], t.shape[1]}, type);
  if (t.bytes) std::memcpy(raw.data_ptr(), t.data, t.bytes);
  return raw.to(at::kFloat);
}

}  // namespace

std::string peft_module_of(const std::string& base_name) {
  if (base_name == "output.weight") return "lm_head";
  const int64_t layer = layer_of(base_name);
  const std::string prefix = "blk." + std::to_string(layer) + ".";
  if (layer >= 0 && base_name.rfind(prefix, 0) == 0 && ends_with(base_name, ".weight")) {
    const std::string tensor =
        base_name.substr(prefix.size(), base_name.size() - prefix.size() - std::string(".weight").size());
    for (const auto& [gguf_name, hf_name] : module_table()) {
      if (tensor == gguf_name) return "model.layers." + std::to_string(layer) + "." + hf_name;
    }
  }
  throw std::invalid_argument("no Hugging Face module for adapted tensor " + base_name +
                              ": PEFT export covers attn_q/k/v/output, ffn_gate/up/down and output");
}

std::string base_name_of_peft_module(const std::string& module) {
  if (module == "lm_head") return "output.weight";
  const std::string prefix = "model.layers.";
  if (module.rfind(prefix, 0) != 0) return "";
  const size_t dot = module.find('.', prefix.size());
  const std::string digits = module.substr(prefix.size(), dot == std::string::npos ? dot : dot - prefix.size());
  if (dot == std::string::npos || digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return "";
  }
  const std::string rest = module.substr(dot + 1);
  for (const auto& [gguf_name, hf_name] : module_table()) {
    if (rest == hf_name) return "blk." + std::to_string(std::stoll(digits)) + "." + gguf_name + ".weight";
  }
  return "";
}

int64_t permuted_heads(const std::string& base_name, const LlamaConfig& config) {
  const std::string target = target_of(base_name);
  if (target != "q" && target != "k") return 0;
  if (config.rope_rotates_halves()) return 0;
  if (config.rope_dims != config.head_dim) {
    throw std::runtime_error("model rotates " + std::to_string(config.rope_dims) + " of " +
                             std::to_string(config.head_dim) +
                             " head dims with adjacent pairs: converting q/k adapters to HF "
                             "rotate-half layout is only defined for full-head RoPE");
  }
  return target == "q" ? config.n_heads : config.n_kv_heads;
}

at::Tensor gguf_rows_to_hf(const at::Tensor& rows, int64_t n_head) {
  const int64_t n_rows = rows.size(0);
  if (n_head <= 0 || n_rows % n_head != 0 || (n_rows / n_head) % 2 != 0) {
    throw std::invalid_argument(std::to_string(n_rows) + " rows do not split into " +
                                std::to_string(n_head) + " heads of an even head_dim");
  }
  std::vector<int64_t> view = {n_head, n_rows / n_head / 2, 2};
  for (int64_t d = 1; d < rows.dim(); ++d) view.push_back(rows.size(d));
  // [n_head, head_dim/2, 2, ...] -> [n_head, 2, head_dim/2, ...]
  return rows.reshape(view).transpose(1, 2).reshape(rows.sizes()).contiguous();
}

at::Tensor hf_rows_to_gguf(const at::Tensor& rows, int64_t n_head) {
  const int64_t n_rows = rows.size(0);
  if (n_head <= 0 || n_rows % n_head != 0 || (n_rows / n_head) % 2 != 0) {
    throw std::invalid_argument(std::to_string(n_rows) + " rows do not split into " +
                                std::to_string(n_head) + " heads of an even head_dim");
  }
  std::vector<int64_t> view = {n_head, 2, n_rows / n_head / 2};
  for (int64_t d = 1; d < rows.dim(); ++d) view.push_back(rows.size(d));
  // [n_head, 2, head_dim/2, ...] -> [n_head, head_dim/2, 2, ...]
  return rows.reshape(view).transpose(1, 2).reshape(rows.sizes()).contiguous();
}

void export_peft(const AdapterSet& adapters, const LlamaModel& model, const std::string& dir,
                 const std::string& base_model_name_or_path) {
  const std::string where = "PEFT export to " + dir;
  if (adapters.pairs().empty()) throw std::invalid_argument(where + ": the adapter set is empty");
  int64_t rank = -1;
  std::set<std::string> modules;
  std::set<int64_t> layers;
  std::vector<at::Tensor> keep_alive;  // owners of the bytes the writer reads
  std::vector<safetensors::TensorData> tensors;
  auto add = [&](const std::string& key, at::Tensor t) {
    keep_alive.push_back(t);
    tensors.push_back({key, "F32", t.sizes().vec(), t.data_ptr<float>(),
                       static_cast<size_t>(t.numel()) * sizeof(float)});
  };
  for (const auto& [name, pair] : adapters.pairs()) {
    at::Tensor a = pair.a.detach().to(at::kCPU, at::kFloat).contiguous();  // [r, in]
    at::Tensor b = pair.b.detach().to(at::kCPU, at::kFloat).contiguous();  // [out, r], GGUF row order
    check_pair_fits(base_linear(model, name, where), a, b, where, name);
    if (rank >= 0 && a.size(0) != rank) {
      throw std::invalid_argument(where + ": adapters of different ranks (" + std::to_string(rank) +
                                  " and " + std::to_string(a.size(0)) + ") cannot share one PEFT config");
    }
    rank = a.size(0);
    if (const int64_t heads = permuted_heads(name, model.config())) b = gguf_rows_to_hf(b, heads);
    const std::string module = peft_module_of(name);
    modules.insert(module_leaf(module));
    if (const int64_t layer = layer_of(name); layer >= 0) layers.insert(layer);
    add(kKeyPrefix + module + ".lora_A.weight", a);
    add(kKeyPrefix + module + ".lora_B.weight", b);
  }

  std::filesystem::create_directories(dir);
  safetensors::write(dir + "/" + kPeftWeightsFile, tensors,
                     {{"format", "pt"}, {kFingerprintKey, model.base_fingerprint()}});
  const json::Value config = peft_config(adapters, rank, modules, layers, model.n_layers(),
                                         base_model_name_or_path);
  write_file_atomically(dir + "/" + kPeftConfigFile, config.dump(2) + "\n");
}

AdapterSet import_peft(const std::string& dir, const LlamaModel& model) {
  namespace fs = std::filesystem;
  const std::string weights_path = dir + "/" + kPeftWeightsFile;
  const std::string config_path = dir + "/" + kPeftConfigFile;
  if (!fs::exists(weights_path)) {
    if (fs::exists(dir + "/adapter_model.bin")) {
      throw std::runtime_error(dir + " holds adapter_model.bin (pickle), which cleave does not read: "
                               "save the adapter with safe_serialization=True");
    }
    throw std::runtime_error(dir + " has no " + kPeftWeightsFile + ": is it a PEFT adapter directory?");
  }
  if (!fs::exists(config_path)) {
    throw std::runtime_error(dir + " has no " + kPeftConfigFile + " beside " + kPeftWeightsFile);
  }
  const PeftConfig config = read_peft_config(config_path);
  const safetensors::File file = safetensors::File::read(weights_path);
  if (auto fp = file.metadata().find(kFingerprintKey); fp != file.metadata().end()) {
    check_adapter_base(weights_path, fp->second, model);
  }

  std::map<std::string, at::Tensor> a_by_base, b_by_base;
  for (const safetensors::TensorView& t : file.tensors()) {
    std::string module;
    std::map<std::string, at::Tensor>* dest = nullptr;
    for (auto [suffix, map] : {std::pair{".lora_A.weight", &a_by_base}, std::pair{".lora_B.weight", &b_by_base}}) {
      if (t.name.rfind(kKeyPrefix, 0) == 0 && ends_with(t.name, suffix)) {
        const size_t begin = std::strlen(kKeyPrefix);
        module = t.name.substr(begin, t.name.size() - begin - std::strlen(suffix));
        dest = map;
      }
    }
    const std::string base = dest ? base_name_of_peft_module(module) : "";
    if (base.empty()) {
      throw std::runtime_error(weights_path + ": unexpected tensor " + t.name +
                               " (expected base_model.model.<module>.lora_A.weight / .lora_B.weight "
                               "for Llama's q/k/v/o/gate/up/down projections or lm_head)");
    }
    if (!dest->emplace(base, to_float_matrix(t, weights_path)).second) {
      throw std::runtime_error(weights_path + ": tensor " + t.name + " appears twice");
    }
  }
  if (a_by_base.empty()) throw std::runtime_error(weights_path + ": adapter has no LoRA tensors");
  if (a_by_base.size() != b_by_base.size()) {
    throw std::runtime_error(weights_path + ": some lora_A/lora_B tensors have no partner");
  }

  AdapterSet set;
  std::set<std::string> targets;
  std::set<int64_t> layers;
  for (auto& [base, a] : a_by_base) {
    auto b_it = b_by_base.find(base);
    if (b_it == b_by_base.end()) {
      throw std::runtime_error(weights_path + ": " + peft_module_of(base) + " has lora_A but no lora_B");
    }
    at::Tensor b = b_it->second;  // [out, r], HF row order
    check_pair_fits(base_linear(model, base, weights_path), a, b, weights_path, peft_module_of(base));
    if (a.size(0) != config.r) {
      throw std::runtime_error(weights_path + ": " + peft_module_of(base) + " has rank " +
                               std::to_string(a.size(0)) + " but " + config_path + " says r = " +
                               std::to_string(config.r));
    }
    if (const int64_t heads = permuted_heads(base, model.config())) b = hf_rows_to_gguf(b, heads);
    if (const std::string target = target_of(base); !target.empty()) targets.insert(target);
    if (const int64_t layer = layer_of(base); layer >= 0) layers.insert(layer);
    set.add(base, a, b);
  }

  LoraOptions options;
  options.rank = config.r;
  // cleave's scale is alpha / r; rsLoRA's is alpha / sqrt(r).
  options.alpha = config.rslora ? config.alpha * std::sqrt(static_cast<double>(config.r)) : config.alpha;
  options.dropout = config.dropout;
  options.targets.assign(targets.begin(), targets.end());
  if (static_cast<int64_t>(layers.size()) != model.n_layers()) options.layers.assign(layers.begin(), layers.end());
  try {
    if (!options.targets.empty()) options.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(config_path + ": " + e.what());
  }
  set.set_options(options);
  set.to(model.device());  // where the model computes
  return set;
}

}  // namespace cleave::lora
