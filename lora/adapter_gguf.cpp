#include "lora/adapter_gguf.h"

#include <ATen/ATen.h>

#include <set>
#include <stdexcept>

#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "model/llama_model.h"

namespace cleave::lora {
namespace {

constexpr const char* kFingerprintKey = "cleave.base.fingerprint";

std::string strip_suffix(const std::string& name, const std::string& suffix) {
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix)) {
    return "";
  }
  return name.substr(0, name.size() - suffix.size());
}

// A GGUF tensor with ne [n0, n1] as a float tensor [n1, n0].
at::Tensor read_matrix(const gguf::TensorInfo& t, const std::string& path) {
  if (t.ne.size() != 2) {
    throw std::runtime_error(path + ": adapter tensor " + t.name + " must be 2-D");
  }
  at::Tensor out = at::empty({t.ne[1], t.ne[0]}, at::kFloat);
  gguf::dequantize(t.type, t.data, out.data_ptr<float>(), t.n_elements());
  return out;
}

}  // namespace

std::string base_fingerprint(const LlamaModel& model) {
  const LlamaConfig& c = model.config();
  return "dim=" + std::to_string(c.dim) + " layers=" + std::to_string(c.n_layers) +
         " heads=" + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         " ffn=" + std::to_string(c.ffn_dim) + " vocab=" + std::to_string(c.vocab_size);
}

void save_gguf(const AdapterSet& adapters, const LlamaModel& model, const std::string& path,
               const std::map<std::string, std::string>& extra) {
  gguf::Writer writer;
  const LoraOptions& o = adapters.options();
  writer.set("general.architecture", gguf::Value::str(model.config().architecture));
  writer.set("general.type", gguf::Value::str("adapter"));
  writer.set("adapter.type", gguf::Value::str("lora"));
  writer.set("adapter.lora.alpha", gguf::Value::f32(static_cast<float>(o.alpha)));
  writer.set("cleave.lora.rank", gguf::Value::u32(static_cast<uint32_t>(o.rank)));
  writer.set("cleave.lora.dropout", gguf::Value::f32(static_cast<float>(o.dropout)));
  writer.set("cleave.lora.targets", gguf::Value::str_array(o.targets));
  writer.set(kFingerprintKey, gguf::Value::str(base_fingerprint(model)));
  for (const auto& [key, value] : extra) writer.set(key, gguf::Value::str(value));
  for (const auto& [name, pair] : adapters.pairs()) {
    at::Tensor a = pair.a.detach().to(at::kCPU, at::kFloat).contiguous();  // [r, in]  -> ne [in, r]
    at::Tensor b = pair.b.detach().to(at::kCPU, at::kFloat).contiguous();  // [out, r] -> ne [r, out]
    writer.add_f32(name + ".lora_a", {a.size(1), a.size(0)}, a.data_ptr<float>());
    writer.add_f32(name + ".lora_b", {b.size(1), b.size(0)}, b.data_ptr<float>());
  }
  writer.write(path);
}

AdapterSet load_gguf(const std::string& path, const LlamaModel& model) {
  auto file = gguf::File::open(path);
  const std::string type = file->get_string("general.type", "");
  const std::string adapter_type = file->get_string("adapter.type", "");
  if (type != "adapter" || adapter_type != "lora") {
    throw std::runtime_error(path + ": not a LoRA adapter (general.type '" + type +
                             "', adapter.type '" + adapter_type +
                             "'; expected 'adapter' and 'lora')");
  }
  const std::string arch = file->get_string("general.architecture", "");
  if (arch != model.config().architecture) {
    throw std::runtime_error(path + ": adapter is for architecture '" + arch +
                             "' but the base model is '" + model.config().architecture + "'");
  }
  if (const gguf::Value* fp = file->find(kFingerprintKey)) {
    if (fp->as_string() != base_fingerprint(model)) {
      throw std::runtime_error(path + ": adapter was trained on a different base model (" +
                               fp->as_string() + ") than the one loaded (" +
                               base_fingerprint(model) + ")");
    }
  }

  std::map<std::string, at::Tensor> a_by_base, b_by_base;
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (std::string base = strip_suffix(t.name, ".lora_a"); !base.empty()) {
      a_by_base[base] = read_matrix(t, path);
    } else if (std::string base_b = strip_suffix(t.name, ".lora_b"); !base_b.empty()) {
      b_by_base[base_b] = read_matrix(t, path);
    } else {
      throw std::runtime_error(path + ": unexpected tensor " + t.name +
                               " in a LoRA adapter (expected <base>.lora_a / .lora_b)");
    }
  }
  if (a_by_base.empty()) throw std::runtime_error(path + ": adapter has no tensors");

  LoraOptions options;
  options.alpha = file->get("adapter.lora.alpha").as_float();
  options.dropout = file->get_float("cleave.lora.dropout", 0.0);
  options.targets.clear();
  std::set<std::string> targets;
  AdapterSet set;
  auto& mutable_model = const_cast<LlamaModel&>(model);
  for (const auto& [base, a] : a_by_base) {
    auto b_it = b_by_base.find(base);
    if (b_it == b_by_base.end()) {
      throw std::runtime_error(path + ": " + base + ".lora_a has no matching .lora_b");
    }
    const at::Tensor& b = b_it->second;
    const FrozenLinear* linear = mutable_model.find_linear(base);
    if (!linear) {
      throw std::runtime_error(path + ": adapter targets " + base +
                               ", which the base model lacks: is this the base model the "
                               "adapter was trained on?");
    }
    const int64_t in = linear->weight.in_features(), out = linear->weight.out_features();
    if (a.size(1) != in || b.size(0) != out || a.size(0) != b.size(1)) {
      throw std::runtime_error(path + ": adapter for " + base + " has lora_a " +
                               c10::str(a.sizes()) + " and lora_b " + c10::str(b.sizes()) +
                               ", expected [r, " + std::to_string(in) + "] and [" +
                               std::to_string(out) + ", r]: is this the base model the adapter "
                               "was trained on?");
    }
    if (options.rank != a.size(0) && !set.pairs().empty()) {
      throw std::runtime_error(path + ": adapters of different ranks in one file are not supported");
    }
    options.rank = a.size(0);
    const std::string target = target_of(base);
    if (!target.empty()) targets.insert(target);
    set.add(base, a, b);
  }
  if (b_by_base.size() != a_by_base.size()) {
    throw std::runtime_error(path + ": some .lora_b tensors have no matching .lora_a");
  }
  options.targets.assign(targets.begin(), targets.end());
  set.set_options(options);
  set.to(model.device());  // where the model computes
  return set;
}

}  // namespace cleave::lora
