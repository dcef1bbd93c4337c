#include "aggregator/strategy_state_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "lora/safetensors.h"

namespace cleave::aggregator {

void save_strategy_state(const NamedTensors& state, const std::string& path, uint32_t round) {
  std::vector<at::Tensor> keep;  // contiguous copies alive until written
  std::vector<safetensors::TensorData> tensors;
  for (const auto& [name, tensor] : state) {
    at::Tensor t = tensor.detach().contiguous();
    std::string dtype;
    if (t.scalar_type() == at::kFloat) {
      dtype = "F32";
    } else if (t.scalar_type() == at::kLong) {
      dtype = "I64";
    } else if (t.scalar_type() == at::kDouble) {
      dtype = "F64";
    } else {
      throw std::runtime_error("strategy state tensor " + name + " has dtype " +
                               std::string(c10::toString(t.scalar_type())) +
                               ", which the checkpoint cannot store (float32, float64, int64)");
    }
    keep.push_back(t);
    tensors.push_back({name, dtype, t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.nbytes())});
  }
  safetensors::write(path, tensors, {{"cleave.round", std::to_string(round)}});
}

NamedTensors load_strategy_state(const std::string& path) {
  const safetensors::File file = safetensors::File::read(path);
  NamedTensors out;
  for (const safetensors::TensorView& view : file.tensors()) {
    at::ScalarType type;
    if (view.dtype == "F32") {
      type = at::kFloat;
    } else if (view.dtype == "I64") {
      type = at::kLong;
    } else if (view.dtype == "F64") {
      type = at::kDouble;
    } else {
      throw std::runtime_error(path + ": strategy state tensor " + view.name + " has dtype " + view.dtype +
                               ", expected F32, F64 or I64");
    }
    at::Tensor t = at::empty(view.shape, at::TensorOptions().dtype(type));
    if (static_cast<size_t>(t.nbytes()) != view.bytes) {
      throw std::runtime_error(path + ": tensor " + view.name + " has " + std::to_string(view.bytes) +
                               " bytes, which does not match its shape");
    }
    std::memcpy(t.data_ptr(), view.data, view.bytes);
    out[view.name] = t;
  }
  return out;
}

}  // namespace cleave::aggregator
