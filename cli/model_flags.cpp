#include "cli/model_flags.h"

#include <ostream>

#include "lora/adapter_gguf.h"

namespace cleave::cli {

ArgParser& add_model_flags(ArgParser& parser) {
  return parser.value("--model", "FILE", "base model GGUF, or a Hugging Face checkpoint directory")
      .value("--adapter", "FILE", "LoRA adapter GGUF to apply");
}

ArgParser& add_runtime_flags(ArgParser& parser) {
  const ComputeOptions compute;
  return parser.value("--quant", "Q", "base weights in memory: native, none, int8, q4").defaults_to("native")
      .value("--device", "D", "cpu, cuda or cuda:N").defaults_to(compute.device)
      .value("--precision", "P", "float32, bf16 or fp16 (fp16: CUDA only)").defaults_to(to_string(compute.precision))
      .value("--threads", "N", "LibTorch threads; 0: all cores").defaults_to(ModelFlags{}.threads);
}

ModelFlags read_model_flags(const ParsedArgs& args) {
  ModelFlags flags;
  flags.model = args.require("--model");
  flags.adapter = args.get("--adapter");
  flags.quant = quant_from_flag(args.require("--quant"));
  flags.compute = compute_from_flags(args.require("--device"), args.require("--precision"));
  flags.threads = args.get_int("--threads");  // a negative count: set_threads refuses it
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
