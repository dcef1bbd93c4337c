// The flags of the commands that run the base model themselves (`cleave
// eval`, `cleave generate`): which model and adapter (--model, --adapter) and
// how it runs (--quant, --device, --precision, --threads). Declared, read and
// acted on here, so each command declares only the flags that are its own.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "util/args.h"
#include "cli/base_model.h"
#include "lora/adapter_set.h"

namespace cleave::cli {

// --model and --adapter, for the start of a command's flags.
ArgParser& add_model_flags(ArgParser& parser);
// --quant, --device, --precision and --threads, for the end.
ArgParser& add_runtime_flags(ArgParser& parser);

struct ModelFlags {
  std::string model;                   // --model: the base model GGUF
  std::optional<std::string> adapter;  // --adapter: a LoRA adapter GGUF
  BaseQuant quant = BaseQuant::native;
  ComputeOptions compute;              // --device, --precision
  int64_t threads = 0;                 // 0: all cores
};

// Their values; a missing --model or a bad --quant, --device, --precision or
// --threads is a UsageError.
ModelFlags read_model_flags(const ParsedArgs& args);

struct AdaptedModel {
  BaseModel base;
  std::optional<lora::AdapterSet> adapters;  // with --adapter

  const LinearAdapters* applied() const { return adapters ? &*adapters : nullptr; }
};

// Sets the threads, loads the base model and the adapter and says so on `log`
// ("threads: N", "model: ...", "adapter: ..."). A file that is missing or
// does not fit throws std::runtime_error.
AdaptedModel load_adapted_model(const ModelFlags& flags, std::ostream& log);

}  // namespace cleave::cli
