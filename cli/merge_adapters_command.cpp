// cleave merge-adapters --model BASE.gguf --site SITE.gguf --server SERVER.gguf
// --out FULL.gguf: the whole fine-tuned model's adapters from a split run, as
// one GGUF LoRA that `cleave eval --adapter` and llama.cpp's --lora load.
#include <iostream>
#include <set>
#include <sstream>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "lora/adapter_gguf.h"
#include "lora/split_adapters.h"

namespace cleave::cli {

ArgParser merge_adapters_parser() {
  return ArgParser("cleave merge-adapters", "--model BASE.gguf --site SITE.gguf --server SERVER.gguf --out FULL.gguf",
                   "Merges the two halves of a split run into the whole model's adapters: the\n"
                   "sites' (the aggregator's checkpoint adapters-round-N.gguf, a simulation's\n"
                   "adapters_client.gguf, or cleave train's adapter.gguf with split:) and the\n"
                   "split server's (its split_server.checkpoint, or adapters_server.gguf). The\n"
                   "sites' tensors win where both hold a block (u_shaped: the server's copies of\n"
                   "blocks [top_cut, L) are never trained); projections neither holds get B = 0.\n"
                   "Both files must have been trained on BASE with the same rank and alpha.")
      .value("--model", "FILE", "the base model GGUF both halves were trained on")
      .value("--site", "FILE", "the sites' (client-side) adapters")
      .value("--server", "FILE", "the split server's adapters")
      .value("--out", "FILE", "the merged GGUF LoRA to write");
}

int run_merge_adapters(const ParsedArgs& args) {
  std::ostringstream quiet;
  const BaseModel base = load_base_model(args.require("--model"), BaseQuant::native, quiet);
  const std::string site_path = args.require("--site"), server_path = args.require("--server");
  const std::string out = args.require("--out");
  const lora::AdapterSet site = lora::load_gguf(site_path, *base.model);
  const lora::AdapterSet server = lora::load_gguf(server_path, *base.model);
  const lora::LoraOptions& a = site.options();
  const lora::LoraOptions& b = server.options();
  if (a.rank != b.rank || a.alpha != b.alpha) {
    throw ConfigError("--site " + site_path + " has rank " + std::to_string(a.rank) + ", alpha " +
                      std::to_string(a.alpha) + " but --server " + server_path + " has rank " +
                      std::to_string(b.rank) + ", alpha " + std::to_string(b.alpha) +
                      ": one LoRA file holds one scale; were both halves trained in the same run?");
  }
  lora::LoraOptions options = a;
  std::set<std::string> targets(a.targets.begin(), a.targets.end());
  targets.insert(b.targets.begin(), b.targets.end());
  options.targets.assign(targets.begin(), targets.end());
  const lora::NamedTensors server_tensors = server.to_named();
  const lora::AdapterSet full =
      lora::combine_split_adapters(*base.model, options, site.to_named(), &server_tensors);

  int64_t from_site = 0, from_server = 0;
  for (const auto& [name, pair] : full.pairs()) {
    if (site.pairs().count(name)) {
      ++from_site;
    } else if (server.pairs().count(name)) {
      ++from_server;
    }
  }
  lora::save_gguf(full, *base.model, out, {{"cleave.merged.site", site_path}, {"cleave.merged.server", server_path}});
  std::cout << "merge-adapters: " << full.pairs().size() << " adapted projections (rank " << options.rank << "): "
            << from_site << " from the site, " << from_server << " from the split server, "
            << (static_cast<int64_t>(full.pairs().size()) - from_site - from_server) << " untrained (B = 0); written to "
            << out << "\n";
  return 0;
}

}  // namespace cleave::cli
