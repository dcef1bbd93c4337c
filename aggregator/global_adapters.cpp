#include "aggregator/global_adapters.h"

#include <ATen/ATen.h>

#include <set>
#include <stdexcept>

#include "lora/adapter_gguf.h"
#include "lora/adapter_set.h"
#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "model/llama_model.h"

namespace cleave::aggregator {
namespace {

// The keys lora::save_gguf writes; kept in step with lora/adapter_gguf.cpp.
constexpr const char* kFingerprintKey = "cleave.base.fingerprint";
constexpr const char* kLayoutKey = "cleave.site.layout";   // split::SiteLayout
constexpr const char* kCutLayerKey = "cleave.site.cut_layer";
constexpr const char* kTopCutKey = "cleave.site.top_cut";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string base_of(const std::string& name) {
  for (const char* suffix : {".lora_a", ".lora_b"}) {
    if (ends_with(name, suffix)) return name.substr(0, name.size() - 7);
  }
  return "";
}

}  // namespace

GlobalAdapters global_adapters_for_model(const LlamaModel& model, const lora::LoraOptions& lora,
                                         uint64_t seed, split::SiteBlocks blocks) {
  blocks.validate(model.n_layers(), "");
  const lora::AdapterSet set =
      lora::AdapterSet::create(model, lora, seed, [blocks](int64_t layer) { return blocks.contains(layer); });
  if (set.pairs().empty()) {
    throw std::invalid_argument("no LoRA adapters in the sites' blocks (" + blocks.describe() +
                                "): check lora.layers and lora.targets");
  }
  GlobalAdapters out;
  out.architecture = model.config().architecture;
  out.base_fingerprint = lora::base_fingerprint(model);
  out.lora = lora;
  out.tensors = set.to_named();
  out.blocks = blocks;
  return out;
}

void save_global_adapters(const GlobalAdapters& adapters, const std::string& path,
                          const std::map<std::string, std::string>& extra) {
  const lora::LoraOptions& o = adapters.lora;
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str(adapters.architecture));
  writer.set("general.type", gguf::Value::str("adapter"));
  writer.set("adapter.type", gguf::Value::str("lora"));
  writer.set("adapter.lora.alpha", gguf::Value::f32(static_cast<float>(o.alpha)));
  writer.set("cleave.lora.rank", gguf::Value::u32(static_cast<uint32_t>(o.rank)));
  writer.set("cleave.lora.dropout", gguf::Value::f32(static_cast<float>(o.dropout)));
  writer.set("cleave.lora.targets", gguf::Value::str_array(o.targets));
  writer.set(kFingerprintKey, gguf::Value::str(adapters.base_fingerprint));
  if (adapters.blocks) {
    writer.set(kLayoutKey, gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->layout)));
    writer.set(kCutLayerKey, gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->cut_layer)));
    writer.set(kTopCutKey, gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->top_cut)));
  }
  for (const auto& [key, value] : extra) writer.set(key, gguf::Value::str(value));
  for (const auto& [name, tensor] : adapters.tensors) {
    if (base_of(name).empty() || tensor.dim() != 2) {
      throw std::invalid_argument("global adapter tensor " + name +
                                  " is not a 2-D <base>.lora_a / <base>.lora_b matrix");
    }
    const at::Tensor t = tensor.detach().to(at::kFloat).contiguous();  // [rows, cols] -> ne [cols, rows]
    writer.add_f32(name, {t.size(1), t.size(0)}, t.data_ptr<float>());
  }
  writer.write(path);
}

GlobalAdapters load_global_adapters(const std::string& path) {
  auto file = gguf::File::open(path);
  const std::string type = file->get_string("general.type", "");
  const std::string adapter_type = file->get_string("adapter.type", "");
  if (type != "adapter" || adapter_type != "lora") {
    throw std::runtime_error(path + ": not a LoRA adapter (general.type '" + type + "', adapter.type '" +
                             adapter_type + "'; expected 'adapter' and 'lora')");
  }
  GlobalAdapters out;
  out.architecture = file->get_string("general.architecture", "");
  out.base_fingerprint = file->get_string(kFingerprintKey, "");
  if (out.base_fingerprint.empty()) {
    throw std::runtime_error(path + ": adapter has no " + std::string(kFingerprintKey) +
                             ", so the aggregator cannot tell which base model sites must load; "
                             "initialise the aggregator from the base model instead");
  }
  out.lora.alpha = file->get("adapter.lora.alpha").as_float();
  out.lora.dropout = file->get_float("cleave.lora.dropout", 0.0);
  const gguf::Value* layout = file->find(kLayoutKey);
  const gguf::Value* cut = file->find(kCutLayerKey);
  const gguf::Value* top = file->find(kTopCutKey);
  if (layout && cut && top) {
    if (layout->as_int() < 0 || layout->as_int() > 2) {
      throw std::runtime_error(path + ": " + kLayoutKey + " " + std::to_string(layout->as_int()) +
                               " is not a site layout (0 none, 1 vanilla, 2 u_shaped)");
    }
    out.blocks = split::SiteBlocks{static_cast<split::SiteLayout>(layout->as_int()),
                                   static_cast<int32_t>(cut->as_int()), static_cast<int32_t>(top->as_int())};
  }
  std::set<std::string> targets;
  int64_t rank = -1;
  for (const gguf::TensorInfo& t : file->tensors()) {
    const std::string base = base_of(t.name);
    if (base.empty() || t.ne.size() != 2) {
      throw std::runtime_error(path + ": unexpected tensor " + t.name +
                               " in a LoRA adapter (expected 2-D <base>.lora_a / .lora_b)");
    }
    at::Tensor values = at::empty({t.ne[1], t.ne[0]}, at::kFloat);  // ne [n0, n1] -> [n1, n0]
    gguf::dequantize(t.type, t.data, values.data_ptr<float>(), t.n_elements());
    const bool is_a = ends_with(t.name, ".lora_a");
    const int64_t r = is_a ? values.size(0) : values.size(1);  // a [r, in], b [out, r]
    if (rank >= 0 && r != rank) {
      throw std::runtime_error(path + ": tensor " + t.name + " has rank " + std::to_string(r) +
                               " but earlier tensors rank " + std::to_string(rank) +
                               "; adapters of mixed ranks are not supported");
    }
    rank = r;
    const std::string target = lora::target_of(base);
    if (!target.empty()) targets.insert(target);
    out.tensors[t.name] = values;
  }
  if (out.tensors.empty()) throw std::runtime_error(path + ": adapter has no tensors");
  for (const auto& [name, tensor] : out.tensors) {
    const std::string partner = base_of(name) + (ends_with(name, ".lora_a") ? ".lora_b" : ".lora_a");
    if (!out.tensors.count(partner)) {
      throw std::runtime_error(path + ": " + name + " has no matching " + partner);
    }
  }
  out.lora.rank = rank;
  if (const gguf::Value* written = file->find("cleave.lora.targets")) {
    out.lora.targets = written->as_strings();
  } else {
    out.lora.targets.assign(targets.begin(), targets.end());
  }
  return out;
}

}  // namespace cleave::aggregator
