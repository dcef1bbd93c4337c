// Building a LlamaModel from a GGUF file.
#pragma once

#include <memory>
#include <string>

#include "model/frozen_weight.h"
#include "model/llama_model.h"

namespace cleave {

namespace gguf { class File; }

// Loads the base model. Every problem (missing tensor, wrong shape,
// unsupported type) throws std::runtime_error naming the file and tensor.
std::shared_ptr<LlamaModel> load_llama(const std::string& path, BaseQuant quant);
std::shared_ptr<LlamaModel> load_llama(std::shared_ptr<const gguf::File> file, BaseQuant quant);

}  // namespace cleave
