// The aggregator's global client-side adapters. The aggregator never loads
// the base model's weights: what it needs is the adapters' names and shapes,
// the LoRA hyperparameters and the base fingerprint sites must match. Those
// come either from an adapter GGUF (read here without a model) or, once at
// start-up, from the base model (global_adapters_for_model; the caller may
// drop the model afterwards).
//
// On disk the global adapters are a GGUF LoRA in llama.cpp's convention,
// written and read by lora/adapter_gguf.h (with the sites' blocks as
// cleave.site.* metadata), so `llama-cli --lora` and lora::load_gguf read the
// aggregator's checkpoints.
#pragma once

#include <map>
#include <string>

#include <optional>

#include "aggregator/client_update.h"
#include "lora/lora_options.h"
#include "split/site_blocks.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::aggregator {

struct GlobalAdapters {
  std::string architecture = "llama";  // GGUF general.architecture of the base
  std::string base_fingerprint;        // LlamaModel::base_fingerprint() of the base
  lora::LoraOptions lora;              // rank, alpha, dropout, targets
  NamedTensors tensors;                // "<base>.lora_a" [r, in], "<base>.lora_b" [out, r], f32
  // The blocks sites run (cleave.site.cut_layer / .top_cut in the GGUF);
  // unset for a file written before cleave recorded them, whose sites are
  // then checked by the adapters' names and shapes only.
  std::optional<split::SiteBlocks> blocks;
};

// A site that trains at another lora.rank (at most the global's) or
// lora.alpha than the global adapters: heterogeneous ranks, under
// lora.aggregation product only. It is handed the global at its rank and
// scale (global_for_site in aggregation.h) and its updates are deltas of that.
struct SiteLora {
  int64_t rank = 0;
  double alpha = 0;
  bool operator<(const SiteLora& other) const {
    return rank < other.rank || (rank == other.rank && alpha < other.alpha);
  }
  bool operator==(const SiteLora& other) const { return rank == other.rank && alpha == other.alpha; }
};

// Fresh adapters for the blocks sites run (`blocks`: [0, cut_layer) and
// [top_cut, L); split::all_blocks() without split), initialised like
// lora::AdapterSet::create from `seed` (A Kaiming-uniform, B zero). Throws
// std::invalid_argument when the blocks do not fit the model.
GlobalAdapters global_adapters_for_model(const LlamaModel& model, const lora::LoraOptions& lora,
                                         uint64_t seed, split::SiteBlocks blocks);

// Writes the adapters as a GGUF LoRA (atomic: temporary file and rename).
// `extra` adds string metadata such as "cleave.round".
void save_global_adapters(const GlobalAdapters& adapters, const std::string& path,
                          const std::map<std::string, std::string>& extra = {});

// Reads a GGUF LoRA without its base model. Throws std::runtime_error naming
// the file when it is not a LoRA adapter, has unpaired or misshapen tensors,
// mixed ranks, or no base fingerprint (save it with cleave first).
GlobalAdapters load_global_adapters(const std::string& path);

}  // namespace cleave::aggregator
