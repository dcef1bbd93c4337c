// cleave export-peft --model BASE.gguf --adapter ADAPTER.gguf --out DIR: a
// cleave (GGUF LoRA) adapter in Hugging Face PEFT's layout.
#include <iostream>
#include <sstream>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "lora/adapter_gguf.h"
#include "lora/adapter_peft.h"

namespace cleave::cli {

ArgParser export_peft_parser() {
  return ArgParser("cleave export-peft", "--model BASE.gguf --adapter ADAPTER.gguf --out DIR [--base-name ID]",
                   "Writes DIR/adapter_model.safetensors and DIR/adapter_config.json, so\n"
                   "transformers + PEFT load the adapter onto the Hugging Face version of the\n"
                   "base model (q and k rows are permuted from GGUF's RoPE layout to HF's).\n"
                   "The adapter must have been trained on BASE (names and shapes are checked).")
      .value("--model", "FILE", "the base model GGUF the adapter was trained on")
      .value("--adapter", "FILE", "a cleave adapter (adapter.gguf, a checkpoint or the aggregator's)")
      .value("--out", "DIR", "the PEFT adapter directory to write")
      .value("--base-name", "ID", "base_model_name_or_path in adapter_config.json, e.g. a hub id");
}

int run_export_peft(const ParsedArgs& args) {
  std::ostringstream quiet;
  const BaseModel base = load_base_model(args.require("--model"), BaseQuant::native, quiet);
  const lora::AdapterSet adapters = lora::load_gguf(args.require("--adapter"), *base.model);
  const std::string dir = args.require("--out");
  lora::export_peft(adapters, *base.model, dir, args.get("--base-name").value_or(""));
  std::cout << "export-peft: " << adapters.pairs().size() << " adapted projections (rank "
            << adapters.options().rank << ") written to " << dir << "/" << lora::kPeftWeightsFile << " and "
            << dir << "/" << lora::kPeftConfigFile << "\n";
  return 0;
}

}  // namespace cleave::cli
