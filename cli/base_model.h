// What every command that runs a model needs: the thread count, the base
// model and its tokenizer from one GGUF file (or Hugging Face checkpoint).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>

#include "model/compute.h"
#include "model/frozen_weight.h"
#include "model/gguf.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"

namespace cleave::cli {

// Sets LibTorch's intra-op threads to `requested`, or to every core when 0
// (LibTorch's own default here is 1); prints "threads: N"; returns N.
int64_t set_threads(int64_t requested, std::ostream& out);

// The value of a --quant flag; anything but native|none|int8|q4 is a UsageError.
BaseQuant quant_from_flag(const std::string& value);

struct BaseModel {
  std::shared_ptr<LlamaModel> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};

// A model path as a GGUF file: the file itself, or a Hugging Face checkpoint
// directory converted in memory. Throws naming the path when it is neither.
std::shared_ptr<const gguf::File> open_model_file(const std::string& path);

// Opens the GGUF once for both (a Hugging Face checkpoint directory is
// converted in memory first: convert/hf_checkpoint.h), moves the model to `compute`'s device and
// precision (runtime.device / runtime.precision); prints a one-line summary.
// Every problem (missing, truncated, unsupported tensor type, no tokenizer,
// a CUDA device this build or machine lacks) throws std::runtime_error.
BaseModel load_base_model(const std::string& path, BaseQuant quant, std::ostream& out,
                          const ComputeOptions& compute = {});

// The value of --device / --precision flags; a bad one is a UsageError.
ComputeOptions compute_from_flags(const std::string& device, const std::string& precision);

}  // namespace cleave::cli
