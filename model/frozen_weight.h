// A frozen (never trained) weight matrix of the base model, stored as float32,
// int8 with one scale per output row, 4-bit blocks of 32 with one scale per
// block, or the ggml blocks it was loaded with (any type gguf::is_supported
// names: Q4_0 ... Q8_0, the K quants, IQ4_NL, IQ4_XS). ggml blocks have one
// kernel for every type, gguf::dequantize, row by row: a type it reads is a
// type the native base holds, with no per-type fallback to choose.
// Only dequantize() turns it into float, and the caller drops the result
// after use: no float copy of a quantized weight lives between steps.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/gguf.h"
#include "model/int8_matmul.h"

namespace cleave {

// How the frozen base is held in memory (config `base.quant`).
enum class BaseQuant {
  native,  // as stored in the file: float tensors as float32, ggml blocks kept as blocks,
           // each tensor in its own type (a Q4_K_M file keeps its Q5_0/Q6_K/... tensors)
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

  // [out, in] in the compute dtype (float32 unless moved with to()), on the
  // weight's device; for f32 storage the stored tensor itself (no copy).
  at::Tensor dequantize() const;

  // Moves the storage to `device` and sets the dtype dequantize() returns.
  // Float weights are converted (stored in `dtype`); int8/q4 keep their
  // codes, with scales in `dtype`, and dequantize with tensor ops on the
  // device (the CPU loops serve CPU float32 only). ggml blocks are
  // dequantized once to `dtype` unless the target is CPU float32: the GPU has
  // no ggml kernels here, and requantizing K-quants to q4 would add a second
  // rounding. Memory then is 2 bytes per weight for bf16/fp16 (Q4_K: 0.56);
  // base.quant int8 or q4 keeps the base quantized on the device instead.
  void to(c10::Device device, c10::ScalarType dtype);
  c10::ScalarType dtype() const { return dtype_; }
  // Rows [begin, begin + count) as [count, in] (float32, or the dtype given to
  // to(), on the weight's device); for f32 storage a view
  // (no copy). Lets a caller walk a large quantized matrix (the output head)
  // slice by slice instead of holding all of it as float.
  at::Tensor dequantize_rows(int64_t begin, int64_t count) const;
  // The same rounded to bfloat16 ([out, in] / [count, in] bf16), for the CPU
  // bf16 matmuls (model/cpu_matmul.h): quantized rows are expanded straight
  // into bf16, half the bytes of a float copy. Only for a weight on the CPU
  // whose dtype() is float32; throws otherwise.
  at::Tensor dequantize_bf16() const;
  at::Tensor dequantize_rows_bf16(int64_t begin, int64_t count) const;
  // Rows [begin, begin + count) of int8_rows storage as their codes and
  // scales (views, no copy), for the int8 products (model/int8_matmul.h).
  // Only for int8_rows storage on the CPU whose dtype() is float32; throws
  // otherwise.
  Int8Rows int8_rows(int64_t begin, int64_t count) const;
  // The rows named by `ids` (any shape, int64) as [..., in] (dtype as above): only the
  // rows looked up are dequantized (an embedding lookup).
  at::Tensor gather_rows(const at::Tensor& ids) const;

  // True when both hold the same data (a tied output and its embedding).
  bool shares_data_with(const FrozenWeight& other) const;

  Storage storage() const { return storage_; }
  bool is_float() const { return storage_ == Storage::f32; }
  // The float weight, for merging adapters into the base; throws unless is_float().
  at::Tensor& float_weight();
  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  int64_t bytes() const;   // memory held by the weight's data
  std::string describe() const;  // "q4 [172, 64]"

 private:
  // Throws std::out_of_range unless rows [begin, begin + count) exist.
  void check_rows(int64_t begin, int64_t count) const;
  // Dequantizes row r into dst[0, in) (any storage but f32).
  void dequantize_row(int64_t r, float* dst) const;

  Storage storage_ = Storage::f32;
  int64_t out_ = 0, in_ = 0;
  at::Tensor values_;    // f32: [out, in]; int8: int8 [out, in]; q4: uint8 [out, padded_in/2]
  at::Tensor scales_;    // int8: [out]; q4: [out, padded_in/32]
  gguf::TensorType ggml_type_ = gguf::TensorType::F32;
  const uint8_t* ggml_data_ = nullptr;
  c10::ScalarType dtype_ = c10::ScalarType::Float;  // what dequantize() returns
  std::shared_ptr<const gguf::File> owner_;
};

}  // namespace cleave
