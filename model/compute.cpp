#include "model/compute.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <cctype>
#include <stdexcept>

#include "model/cpu_matmul.h"

namespace cleave {
namespace {

// -1 for "cpu", the index for "cuda" (0) / "cuda:N"; throws for anything else.
int device_index(const std::string& name) {
  if (name == "cpu") return -1;
  if (name == "cuda") return 0;
  const std::string prefix = "cuda:";
  const std::string digits = name.size() > prefix.size() ? name.substr(prefix.size()) : "";
  bool ok = name.compare(0, prefix.size(), prefix) == 0 && !digits.empty() && digits.size() <= 3;
  for (char ch : digits) ok = ok && std::isdigit(static_cast<unsigned char>(ch));
  if (!ok) {
    throw std::invalid_argument("unknown device '" + name + "': expected cpu, cuda or cuda:N");
  }
  return std::stoi(digits);
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32") return Precision::float32;
  if (name == "bf16" || name == "bfloat16") return Precision::bf16;
  if (name == "fp16" || name == "float16" || name == "f16") return Precision::fp16;
  throw std::invalid_argument("unknown precision '" + name + "': expected one of float32, bf16, fp16");
}

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::float32: return "float32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

c10::ScalarType compute_dtype(Precision precision) {
  switch (precision) {
    case Precision::float32: return c10::ScalarType::Float;
    case Precision::bf16: return c10::ScalarType::BFloat16;
    case Precision::fp16: return c10::ScalarType::Half;
  }
  return c10::ScalarType::Float;
}

void ComputeOptions::validate() const {
  int index = -1;
  try {
    index = device_index(device);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("runtime.device: ") + e.what());
  }
  try {
    resolve_cpu_matmul(matmul);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("runtime.matmul: ") + e.what());
  }
  if (index < 0 && precision == Precision::fp16) {
    throw std::invalid_argument(
        "runtime.precision fp16 needs a CUDA device (LibTorch's CPU matmuls have no fp16 "
        "kernels): use bf16 or float32 with runtime.device cpu");
  }
}

bool torch_has_cuda() {
#ifdef CLEAVE_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

c10::Device resolve_device(const std::string& name) {
  const int index = device_index(name);
  if (index < 0) return c10::Device(c10::DeviceType::CPU);
  if (!torch_has_cuda()) {
    throw std::runtime_error(
        "device '" + name +
        "': this cleave was built against a LibTorch without CUDA; rebuild with "
        "-DCMAKE_PREFIX_PATH=<CUDA LibTorch> (see README, GPU)");
  }
  // With a CUDA LibTorch, 0 devices means no driver/GPU, or libtorch_cuda.so
  // was not loaded (linked away by --as-needed).
  const int count = at::detail::getCUDAHooks().getNumGPUs();
  if (index >= count) {
    throw std::runtime_error("no CUDA device " + std::to_string(index) + " (this process sees " +
                             std::to_string(count) +
                             " CUDA devices: check nvidia-smi and CUDA_VISIBLE_DEVICES)");
  }
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace cleave
