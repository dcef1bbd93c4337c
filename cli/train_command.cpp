// cleave train --config FILE.yaml [--set key=value ...]
#include <iostream>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/train_run.h"

namespace cleave::cli {

ArgParser train_parser() {
  return ArgParser("cleave train", "--config FILE.yaml [--set key=value ...]",
                   "Fine-tunes LoRA adapters on a frozen base model as the YAML file says\n"
                   "(configs/default.yaml lists every key). Writes the run directory\n"
                   "(output.dir): adapter.gguf, checkpoint-<step>.gguf, metrics.jsonl and\n"
                   "config.resolved.yaml. Relative paths are relative to the working directory.")
      .value("--config", "FILE", "the run configuration (YAML)")
      .value("--set", "KEY=VALUE",
             "override a key by dotted path, e.g. --set train.lr=1e-3 or\n"
             "                            --set lora.targets=[q,v]; repeatable");
}

int run_train(const ParsedArgs& args) {
  std::vector<Override> overrides;
  for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
  const RunConfig config = load_config(args.require("--config"), overrides);
  run_training(config, std::cout);
  return 0;
}

}  // namespace cleave::cli
