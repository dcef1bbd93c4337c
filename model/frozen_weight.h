// A frozen (never trained) weight matrix of the base model, stored as float32,
// int8 with one scale per output row, 4-bit blocks of 32 with one scale per
// block, or the ggml blocks it was loaded with (Q8_0, Q4_0, Q4_K, Q6_K, ...).
// Only dequantize() turns it into float, and the caller drops the result
// after use: no float copy of a quantized weight lives between steps.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/gguf.h"

namespace cleave {

// How the frozen base is held in memory (config `base.quant`).
enum class BaseQuant {
  native,  // as stored in the file: float tensors as float32, ggml blocks kept as blocks
  none,    // everything float32
  int8,    // int8, absmax scale per output row
  q4,      // 4-bit, blocks of 32 inputs with a float scale (Q4_0-like, symmetric)
};
BaseQuant parse_base_quant(const std::string& name);  // throws listing the valid names
const char* to_string(BaseQuant quant);

class FrozenWeight {
 public:
  enum class Storage { f32, int8_rows, q4_blocks, ggml_blocks };

  FrozenWeight() = default;
  // w: [out, in] float32. Quantizes according to `quant` (native/none keep float).
  static FrozenWeight from_float(const at::Tensor& w, BaseQuant quant);
  // Keeps ggml blocks as they are in the file (rows of `in` elements).
  // `owner` keeps the mapped file alive.
  static FrozenWeight from_ggml(gguf::TensorType type, const uint8_t* data, int64_t out,
                                int64_t in, std::shared_ptr<const gguf::File> owner);

  // [out, in] float32; for f32 storage the stored tensor itself (no copy).
  at::Tensor dequantize() const;

  Storage storage() const { return storage_; }
  bool is_float() const { return storage_ == Storage::f32; }
  // The float weight, for merging adapters into the base; throws unless is_float().
  at::Tensor& float_weight();
  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  int64_t bytes() const;   // memory held by the weight's data
  std::string describe() const;  // "q4 [172, 64]"

 private:
  Storage storage_ = Storage::f32;
  int64_t out_ = 0, in_ = 0;
  at::Tensor values_;    // f32: [out, in]; int8: int8 [out, in]; q4: uint8 [out, padded_in/2]
  at::Tensor scales_;    // int8: [out]; q4: [out, padded_in/32]
  gguf::TensorType ggml_type_ = gguf::TensorType::F32;
  const uint8_t* ggml_data_ = nullptr;
  std::shared_ptr<const gguf::File> owner_;
};

}  // namespace cleave
