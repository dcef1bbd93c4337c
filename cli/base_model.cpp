#include <cstdlib>
#include "cli/base_model.h"

#include <ATen/Parallel.h>

#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "util/args.h"
#include "convert/hf_checkpoint.h"
#include "model/cpu_matmul.h"
#include "model/gguf.h"
#include "model/model_loader.h"
#include "model/tensor_allocator.h"

namespace cleave::cli {

int64_t set_threads(int64_t requested, std::ostream& out) {
  if (requested < 0) throw std::invalid_argument("threads must be >= 0 (0: all cores)");
  int64_t n = requested;
  // 0: all cores, unless OMP_NUM_THREADS says otherwise (the test suite runs
  // every test with 1 thread so parallel tests do not oversubscribe the cores).
  if (n == 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env ? std::atoll(env) : 0;
    if (n <= 0) n = std::max<int64_t>(1, std::thread::hardware_concurrency());
  }
  at::set_num_threads(static_cast<int>(n));
  out << "threads: " << n << "\n";
  return n;
}

BaseQuant quant_from_flag(const std::string& value) {
  try {
    return parse_base_quant(value);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--quant: ") + e.what());
  }
}

ComputeOptions compute_from_flags(const std::string& device, const std::string& precision) {
  ComputeOptions compute;
  compute.device = device;
  try {
    compute.precision = parse_precision(precision);
    compute.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--device/--precision: ") + e.what());
  }
  return compute;
}

std::shared_ptr<const gguf::File> open_model_file(const std::string& path) {
  std::error_code ec;
  if (convert::is_hf_checkpoint(path)) return convert::open_hf_checkpoint(path);  // in memory, nothing written
  if (std::filesystem::is_regular_file(path, ec)) return gguf::File::open(path);
  throw std::runtime_error(path + ": no such model file: give the path of a GGUF base model, or of a "
                           "Hugging Face checkpoint directory (config.json, model.safetensors, "
                           "tokenizer.json)");
}

BaseModel load_base_model(const std::string& path, BaseQuant quant, std::ostream& out,
                          const ComputeOptions& compute) {
  compute.validate();
  const c10::Device device = resolve_device(compute.device);  // fails early: before reading weights
  const std::shared_ptr<const gguf::File> file = open_model_file(path);
  BaseModel base;
  base.model = load_llama(file, quant);
  base.tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_gguf(*file));
  if (!device.is_cpu() || compute.precision != Precision::float32) {
    base.model->to(device, compute_dtype(compute.precision));
  }
  use_cpu_matmul(resolve_cpu_matmul(compute.matmul));
  // Loading and quantizing went through float copies of every weight; give
  // back the mappings the tensor allocator kept from that spike.
  trim_tensor_cache();
  // Fewer tokens than embedding rows is fine (padded vocabularies); more would
  // produce ids the model cannot embed.
  if (base.tokenizer->size() > base.model->config().vocab_size) {
    throw std::runtime_error(path + ": the tokenizer has " + std::to_string(base.tokenizer->size()) +
                             " tokens but the model embeds only " +
                             std::to_string(base.model->config().vocab_size) +
                             ": the file is inconsistent");
  }
  out << "model: " << path << " (" << base.model->config().summary() << ", base "
      << to_string(quant) << ", " << base.model->frozen_bytes() / 1024 << " KiB frozen, "
      << compute.device << " " << to_string(compute.precision) << ")\n";
  if (device.is_cpu() && compute.precision == Precision::float32) {
    out << describe_cpu_matmul(compute.matmul) << "\n";
  }
  return base;
}

}  // namespace cleave::cli
