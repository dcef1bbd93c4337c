#include "aggregator/global_adapters.h"

#include <stdexcept>

#include "lora/adapter_gguf.h"
#include "lora/adapter_set.h"
#include "model/gguf.h"
#include "model/llama_model.h"

namespace cleave::aggregator {
namespace {

// Where the sites' blocks travel in the file (split::SiteBlocks).
constexpr const char* kLayoutKey = "cleave.site.layout";   // split::SiteLayout
constexpr const char* kCutLayerKey = "cleave.site.cut_layer";
constexpr const char* kTopCutKey = "cleave.site.top_cut";

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
  out.base_fingerprint = model.base_fingerprint();
  out.lora = lora;
  out.tensors = set.to_named();
  out.blocks = blocks;
  return out;
}

void save_global_adapters(const GlobalAdapters& adapters, const std::string& path,
                          const std::map<std::string, std::string>& extra) {
  lora::AdapterFile file;
  file.architecture = adapters.architecture;
  file.base_fingerprint = adapters.base_fingerprint;
  file.lora = adapters.lora;
  file.tensors = adapters.tensors;
  if (adapters.blocks) {
    file.extra[kLayoutKey] = gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->layout));
    file.extra[kCutLayerKey] = gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->cut_layer));
    file.extra[kTopCutKey] = gguf::Value::u32(static_cast<uint32_t>(adapters.blocks->top_cut));
  }
  for (const auto& [key, value] : extra) file.extra[key] = gguf::Value::str(value);
  lora::write_adapter_gguf(file, path);
}

GlobalAdapters load_global_adapters(const std::string& path) {
  lora::AdapterFile file = lora::read_adapter_gguf(path);
  if (file.base_fingerprint.empty()) {
    throw std::runtime_error(path + ": adapter has no cleave.base.fingerprint, so the aggregator cannot tell "
                             "which base model sites must load; initialise the aggregator from the base "
                             "model instead");
  }
  GlobalAdapters out;
  out.architecture = file.architecture;
  out.base_fingerprint = file.base_fingerprint;
  out.lora = file.lora;
  out.tensors = std::move(file.tensors);
  const auto layout = file.extra.find(kLayoutKey);
  const auto cut = file.extra.find(kCutLayerKey);
  const auto top = file.extra.find(kTopCutKey);
  if (layout != file.extra.end() && cut != file.extra.end() && top != file.extra.end()) {
    const int64_t mode = layout->second.as_int();
    if (mode < 0 || mode > 2) {
      throw std::runtime_error(path + ": " + kLayoutKey + " " + std::to_string(mode) +
                               " is not a site layout (0 none, 1 vanilla, 2 u_shaped)");
    }
    out.blocks = split::SiteBlocks{static_cast<split::SiteLayout>(mode), static_cast<int32_t>(cut->second.as_int()),
                                   static_cast<int32_t>(top->second.as_int())};
  }
  return out;
}

}  // namespace cleave::aggregator
