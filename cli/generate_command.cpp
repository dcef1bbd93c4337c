// cleave generate --model FILE --prompt TEXT [--adapter FILE] [-n N] ...
#include <iostream>
#include <optional>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "lora/adapter_gguf.h"
#include "model/generate.h"

namespace cleave::cli {

ArgParser generate_parser() {
  return ArgParser("generate", "--model FILE.gguf --prompt TEXT [options]",
                   "Continues the prompt and streams the text to stdout (model and thread\n"
                   "information go to stderr). Temperature 0 is greedy decoding.")
      .value("--model", "FILE", "base model GGUF")
      .value("--prompt", "TEXT", "the text to continue (BOS is added)")
      .value("--adapter", "FILE", "LoRA adapter GGUF to apply")
      .value("--n-predict", "N", "new tokens at most (default 64); stops early at EOS", "-n")
      .value("--temperature", "T", "0: greedy; higher: more random (default 0.8)")
      .value("--top-k", "K", "sample from the K most likely tokens; 0: all (default 40)")
      .value("--top-p", "P", "sample from the smallest set with probability P (default 0.95)")
      .value("--seed", "S", "sampling seed (default 0): the same seed gives the same text")
      .value("--quant", "Q", "base weights in memory: native (default), none, int8, q4")
      .value("--device", "D", "cpu (default), cuda or cuda:N")
      .value("--precision", "P", "float32 (default), bf16 or fp16 (fp16: CUDA only)")
      .value("--threads", "N", "LibTorch threads (default 0: all cores)");
}

int run_generate(const ParsedArgs& args) {
  const std::string model_path = args.require("--model");
  const std::string prompt = args.require("--prompt");
  SamplingOptions options;
  options.max_new_tokens = args.get_int("--n-predict", options.max_new_tokens);
  options.temperature = args.get_double("--temperature", options.temperature);
  options.top_k = args.get_int("--top-k", options.top_k);
  options.top_p = args.get_double("--top-p", options.top_p);
  const int64_t seed = args.get_int("--seed", 0);
  if (seed < 0) throw UsageError("--seed must be >= 0");
  options.seed = static_cast<uint64_t>(seed);
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  const BaseQuant quant = quant_from_flag(args.get_or("--quant", "native"));

  set_threads(args.get_int("--threads", 0), std::cerr);
  const ComputeOptions compute =
      compute_from_flags(args.get_or("--device", "cpu"), args.get_or("--precision", "float32"));
  const BaseModel base = load_base_model(model_path, quant, std::cerr, compute);
  std::optional<lora::AdapterSet> adapters;
  if (const auto adapter_path = args.get("--adapter")) {
    adapters = lora::load_gguf(*adapter_path, *base.model);
    std::cerr << "adapter: " << *adapter_path << "\n";
  }

  const std::vector<TokenId> ids = base.tokenizer->encode(prompt, /*add_bos=*/true);
  std::cout << prompt << std::flush;
  generate(*base.model, adapters ? &*adapters : nullptr, ids, base.tokenizer->eos(), options,
           [&](TokenId id) { std::cout << base.tokenizer->piece(id) << std::flush; });
  std::cout << std::endl;
  return 0;
}

}  // namespace cleave::cli
