// Where the model computes and in which precision (config `runtime.device`,
// `runtime.precision`). The frozen base runs in the compute precision; LoRA
// master weights, their gradients, the optimizer state and the loss stay
// float32 (mixed precision). Names are checked here, the device itself only
// when a model is moved (resolve_device), so a config can be validated on a
// machine without the GPU it is meant for.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace cleave {

enum class Precision { float32, bf16, fp16 };
Precision parse_precision(const std::string& name);  // throws listing float32, bf16, fp16
const char* to_string(Precision precision);
c10::ScalarType compute_dtype(Precision precision);   // kFloat, kBFloat16, kHalf

struct ComputeOptions {
  std::string device = "cpu";                // cpu | cuda | cuda:N
  Precision precision = Precision::float32;
  // runtime.matmul: the frozen matmuls' arithmetic with float32 activations
  // on the CPU (model/cpu_matmul.h): float32 | bf16 | int8 | auto. The training
  // configurations default to auto; eval and generate keep float32.
  std::string matmul = "float32";

  // Checks the device name's syntax, that fp16 is not asked of the CPU and
  // the matmul name; throws std::invalid_argument naming the bad value.
  void validate() const;
};

// True when this build links a LibTorch with CUDA kernels (whether or not a
// GPU is present).
bool torch_has_cuda();

// "cpu" | "cuda" | "cuda:N" -> the device. Throws std::runtime_error when this
// build's LibTorch has no CUDA ("rebuild with -DCMAKE_PREFIX_PATH=<CUDA
// LibTorch>") or the machine has no CUDA device N; std::invalid_argument for
// a malformed name.
c10::Device resolve_device(const std::string& name);

}  // namespace cleave
