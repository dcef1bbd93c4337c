#include "cli/model_flags.h"

#include <ostream>

#include "lora/adapter_gguf.h"

namespace cleave::cli {

ArgParser& add_model_flags(ArgParser& parser) {
  return parser.value("--model", "FILE", "base model GGUF, or a Hugging Face checkpoint directory")
      .value("--adapter", "FILE", "LoRA adapter GGUF to apply");
}

ArgParser& add_runtime_flags(ArgParser& parser) {
  return parser.value("--quant", "Q", "base weights in memory: native (default), none, int8, q4")
      .value("--device", "D", "cpu (default), cuda or cuda:N")
      .value("--precision", "P", "float32 (default), bf16 or fp16 (fp16: CUDA only)")
      .value("--threads", "N", "LibTorch threads (default 0: all cores)");
}

ModelFlags read_model_flags(const ParsedArgs& args) {
  ModelFlags flags;
  flags.model = args.require("--model");
  flags.adapter = args.get("--adapter");
  flags.quant = quant_from_flag(args.get_or("--quant", "native"));
  flags.compute = compute_from_flags(args.get_or("--device", "cpu"), args.get_or("--precision", "float32"));
  flags.threads = args.get_int("--threads", 0);  // a negative count: set_threads refuses it
  return flags;
}

AdaptedModel load_adapted_model(const ModelFlags& flags, std::ostream& log) {
  set_threads(flags.threads, log);
  AdaptedModel loaded{load_base_model(flags.model, flags.quant, log, flags.compute), std::nullopt};
  if (flags.adapter) {
    loaded.adapters = lora::load_gguf(*flags.adapter, *loaded.base.model);
    log << "adapter: " << *flags.adapter << " (" << loaded.adapters->pairs().size()
        << " adapted projections, rank " << loaded.adapters->options().rank << ")\n";
  }
  return loaded;
}

}  // namespace cleave::cli
