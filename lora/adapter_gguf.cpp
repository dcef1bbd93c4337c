#include "lora/adapter_gguf.h"

#include <ATen/ATen.h>

#include <set>
#include <stdexcept>

#include "model/base_fingerprint.h"
#include "model/gguf_quant.h"
#include "model/llama_model.h"

namespace cleave::lora {
namespace {

constexpr const char* kFingerprintKey = "cleave.base.fingerprint";
constexpr const char* kRankKey = "cleave.lora.rank";
constexpr const char* kDropoutKey = "cleave.lora.dropout";
constexpr const char* kTargetsKey = "cleave.lora.targets";

// The keys AdapterFile has fields for.
bool is_adapter_key(const std::string& key) {
  return key.rfind("general.", 0) == 0 || key.rfind("adapter.", 0) == 0 || key == kFingerprintKey ||
         key == kRankKey || key == kDropoutKey || key == kTargetsKey;
}

// "q", "down", ... of the adapted base weights, sorted.
std::vector<std::string> targets_of(const std::set<std::string>& bases) {
  std::set<std::string> targets;
  for (const std::string& base : bases) {
    if (const std::string target = target_of(base); !target.empty()) targets.insert(target);
  }
  return {targets.begin(), targets.end()};
}

// "<base>.lora_a" / "<base>.lora_b" -> "<base>"; empty for any other name.
std::string base_of(const std::string& name) {
  if (!is_lora_a(name) && !is_lora_b(name)) return "";
  return name.substr(0, name.size() - std::string(".lora_a").size());
}

// A GGUF tensor with ne [n0, n1] as a float tensor [n1, n0].
at::Tensor read_matrix(const gguf::TensorInfo& t, const std::string& path) {
  if (t.ne.size() != 2) {
    throw std::runtime_error(path + ": unexpected tensor " + t.name +
                             " in a LoRA adapter (expected 2-D <base>.lora_a / .lora_b)");
  }
  at::Tensor out = at::empty({t.ne[1], t.ne[0]}, at::kFloat);
  gguf::dequantize(t.type, t.data, out.data_ptr<float>(), t.n_elements());
  return out;
}

}  // namespace

void write_adapter_gguf(const AdapterFile& adapter, const std::string& path) {
  const LoraOptions& o = adapter.lora;
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str(adapter.architecture));
  writer.set("general.type", gguf::Value::str("adapter"));
  writer.set("adapter.type", gguf::Value::str("lora"));
  writer.set("adapter.lora.alpha", gguf::Value::f32(static_cast<float>(o.alpha)));
  writer.set(kRankKey, gguf::Value::u32(static_cast<uint32_t>(o.rank)));
  writer.set(kDropoutKey, gguf::Value::f32(static_cast<float>(o.dropout)));
  writer.set(kTargetsKey, gguf::Value::str_array(o.targets));
  if (!adapter.base_fingerprint.empty()) writer.set(kFingerprintKey, gguf::Value::str(adapter.base_fingerprint));
  for (const auto& [key, value] : adapter.extra) writer.set(key, value);
  for (const auto& [name, tensor] : adapter.tensors) {
    if (base_of(name).empty() || tensor.dim() != 2) {
      throw std::invalid_argument(path + ": adapter tensor " + name +
                                  " is not a 2-D <base>.lora_a / <base>.lora_b matrix");
    }
    const at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();  // [rows, cols] -> ne [cols, rows]
    writer.add_f32(name, {t.size(1), t.size(0)}, t.data_ptr<float>());
  }
  writer.write(path);
}

AdapterFile read_adapter_gguf(const std::string& path) {
  auto file = gguf::File::open(path);
  const std::string type = file->get_string("general.type", "");
  const std::string adapter_type = file->get_string("adapter.type", "");
  if (type != "adapter" || adapter_type != "lora") {
    throw std::runtime_error(path + ": not a LoRA adapter (general.type '" + type + "', adapter.type '" +
                             adapter_type + "'; expected 'adapter' and 'lora')");
  }
  AdapterFile out;
  out.architecture = file->get_string("general.architecture", "");
  out.base_fingerprint = file->get_string(kFingerprintKey, "");
  out.lora.alpha = file->get("adapter.lora.alpha").as_float();
  out.lora.dropout = file->get_float(kDropoutKey, 0.0);
  for (const auto& [key, value] : file->metadata()) {
    if (!is_adapter_key(key)) out.extra.emplace(key, value);
  }

  int64_t rank = -1;
  for (const gguf::TensorInfo& t : file->tensors()) {
    const std::string base = base_of(t.name);
    if (base.empty()) {
      throw std::runtime_error(path + ": unexpected tensor " + t.name +
                               " in a LoRA adapter (expected <base>.lora_a / .lora_b)");
    }
    at::Tensor values = read_matrix(t, path);
    const int64_t r = is_lora_a(t.name) ? values.size(0) : values.size(1);  // a [r, in], b [out, r]
    if (rank >= 0 && r != rank) {
      throw std::runtime_error(path + ": tensor " + t.name + " has rank " + std::to_string(r) +
                               " but earlier tensors rank " + std::to_string(rank) +
                               "; adapters of mixed ranks in one file are not supported");
    }
    rank = r;
    out.tensors[t.name] = values;
  }
  if (out.tensors.empty()) throw std::runtime_error(path + ": adapter has no tensors");
  for (const auto& [name, tensor] : out.tensors) {
    const std::string partner = base_of(name) + (is_lora_a(name) ? ".lora_b" : ".lora_a");
    if (!out.tensors.count(partner)) throw std::runtime_error(path + ": " + name + " has no matching " + partner);
  }
  out.lora.rank = rank;
  const gguf::Value* written = file->find(kTargetsKey);
  std::set<std::string> bases;
  for (const auto& [name, tensor] : out.tensors) bases.insert(base_of(name));
  out.lora.targets = written ? written->as_strings() : targets_of(bases);
  return out;
}

void save_gguf(const AdapterSet& adapters, const LlamaModel& model, const std::string& path,
               const std::map<std::string, std::string>& extra) {
  AdapterFile file;
  file.architecture = model.config().architecture;
  file.base_fingerprint = model.base_fingerprint();
  file.lora = adapters.options();
  file.tensors = adapters.to_named();
  for (const auto& [key, value] : extra) file.extra[key] = gguf::Value::str(value);
  write_adapter_gguf(file, path);
}

void check_adapter_base(const std::string& where, const std::string& recorded, const LlamaModel& model) {
  const std::string& loaded = model.base_fingerprint();
  if (recorded.empty() || recorded == loaded) return;
  std::string message = where + ": adapter was trained on a different base model (" + recorded +
                        ") than the one loaded (" + loaded + ")";
  if (is_dimensions_only_fingerprint(recorded) && recorded == base_dimensions(model.config())) {
    message += ": its fingerprint holds only the dimensions, as cleave wrote it before it hashed the "
               "base's weights, so it cannot tell two bases of this shape apart. Train the adapter again "
               "on this base or, if you are sure it was trained on this one, remove the file's " +
               std::string(kFingerprintKey) + " metadata";
  }
  throw std::runtime_error(message);
}

AdapterSet load_gguf(const std::string& path, const LlamaModel& model) {
  const AdapterFile file = read_adapter_gguf(path);
  if (file.architecture != model.config().architecture) {
    throw std::runtime_error(path + ": adapter is for architecture '" + file.architecture +
                             "' but the base model is '" + model.config().architecture + "'");
  }
  check_adapter_base(path, file.base_fingerprint, model);

  AdapterSet set;
  std::set<std::string> bases;
  auto& mutable_model = const_cast<LlamaModel&>(model);
  for (const auto& [name, a] : file.tensors) {
    if (!is_lora_a(name)) continue;
    const std::string base = base_of(name);
    const at::Tensor& b = file.tensors.at(base + ".lora_b");
    const FrozenLinear* linear = mutable_model.find_linear(base);
    if (!linear) {
      throw std::runtime_error(path + ": adapter targets " + base +
                               ", which the base model lacks: is this the base model the "
                               "adapter was trained on?");
    }
    const int64_t in = linear->weight.in_features(), out = linear->weight.out_features();
    if (a.size(1) != in || b.size(0) != out) {
      throw std::runtime_error(path + ": adapter for " + base + " has lora_a " + c10::str(a.sizes()) +
                               " and lora_b " + c10::str(b.sizes()) + ", expected [r, " + std::to_string(in) +
                               "] and [" + std::to_string(out) +
                               ", r]: is this the base model the adapter was trained on?");
    }
    set.add(base, a, b);
    bases.insert(base);
  }
  LoraOptions options = file.lora;
  options.targets = targets_of(bases);  // what the set adapts
  set.set_options(options);
  set.to(model.device());  // where the model computes
  return set;
}

}  // namespace cleave::lora
