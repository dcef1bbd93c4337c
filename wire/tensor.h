// Float tensors on the wire (smashed activations, their gradients, adapter
// tensors): a dtype, a shape and little-endian bytes. Pure C++, no LibTorch.
//
// Layout of `data` by dtype, for n = product(shape) elements:
//   F32          n float32
//   F16          n IEEE half, rounded to nearest even
//   BF16         n bfloat16, rounded to nearest even
//   I8_ROWSCALE  rows float32 scales, then n int8. A row is the last dimension
//                (one token's hidden vector); rows = product of the other
//                dimensions (1 for a scalar). scale = max |x| over the row,
//                q = round(x / scale * 127), x' = q * scale / 127, so
//                |x - x'| <= scale / 254.
//   I4_GROUP     groups bfloat16 scales, then ceil(n / 2) bytes of 4-bit codes.
//                Each row (as for I8_ROWSCALE) is cut into groups of
//                kI4GroupSize consecutive values, the last one shorter when
//                the row length is not a multiple; groups = rows * ceil(row /
//                kI4GroupSize), in row-major order. scale = max |x| / 7 over
//                the group, rounded up to a bfloat16 (so |x / scale| <= 7);
//                q in -7..7 (two's complement nibbles; -8 decodes too),
//                x' = q * scale. The codes run over the whole tensor in
//                row-major order, element 2k in the low nibble of byte k and
//                2k+1 in its high nibble; an odd count leaves the last high
//                nibble 0. Rounded to nearest (ties to even), |x - x'| <=
//                scale / 2; rounded stochastically, E[x'] = x and |x - x'| <
//                scale. With hidden sizes a multiple of 32: 0.5625 bytes per
//                value, 7.1x fewer than F32.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "wire/error.h"

namespace cleave::wire {

enum class WireDType : uint8_t { F32 = 0, F16 = 1, BF16 = 2, I8_ROWSCALE = 3, I4_GROUP = 4 };

std::string to_string(WireDType dtype);   // "f32", "f16", "bf16", "i8_rowscale", "i4_group"

// Values per I4_GROUP scale: the smallest group at which a 2-byte scale keeps
// the codec 7x smaller than F32 (0.5 + 2/32 bytes per value); smaller groups
// would follow outliers more closely but cost more scales (16: 6.4x).
constexpr int64_t kI4GroupSize = 32;

// How I4_GROUP rounds x / scale to a code (the other dtypes ignore it). The
// decoder does not need to know.
struct Rounding {
  // false: to nearest, ties to even. true: floor(x / scale + u), u uniform in
  // [0, 1) from a generator seeded with `seed`: unbiased, so errors do not
  // pile up over the steps of a fine-tune, at about twice the variance.
  bool stochastic = false;
  uint64_t seed = 0;
};

struct WireTensor {
  WireDType dtype = WireDType::F32;
  std::vector<int64_t> shape;   // e.g. [batch, seq, hidden]
  std::vector<uint8_t> data;    // see the layout above
};

// Guards against lying shapes; encode and decode refuse more elements.
constexpr int64_t kMaxWireElements = int64_t{1} << 31;

// product(shape); throws WireError for a negative dimension or a product above
// max_elements (computed without overflow).
int64_t element_count(const std::vector<int64_t>& shape, int64_t max_elements = kMaxWireElements);

// Exact size of `data` for this dtype and shape (validated as above).
size_t expected_data_bytes(WireDType dtype, const std::vector<int64_t>& shape,
                           int64_t max_elements = kMaxWireElements);

// product(shape) once the shape is valid and `data` holds exactly the bytes
// it needs; throws WireError otherwise. Call it before allocating room for a
// received tensor, so a lying shape cannot make the receiver allocate.
int64_t checked_element_count(const WireTensor& tensor, int64_t max_elements = kMaxWireElements);

// Encodes product(shape) floats read from `values` (row-major). Throws
// WireError for a bad shape, a NaN/Inf value (naming its index), or a finite
// value the dtype cannot hold (|x| too large for F16/BF16).
WireTensor encode(const float* values, std::vector<int64_t> shape, WireDType dtype, Rounding rounding = {});

// Decodes to row-major floats. Throws WireError when the dtype is unknown, the
// shape is invalid or too large, the data size does not match the shape
// exactly, or a value or scale is not finite (naming the index).
std::vector<float> decode(const WireTensor& tensor, int64_t max_elements = kMaxWireElements);

// decode() into `values`, which must hold product(shape) floats (e.g. a fresh
// tensor's memory), without an intermediate vector. On a throw `values` holds
// partial results.
void decode_into(const WireTensor& tensor, float* values, int64_t max_elements = kMaxWireElements);

// Serialisation: uint8 dtype code, shape, data; class version 1. Loading only
// checks structure (known dtype); decode() checks the rest.
template <class Archive>
void CEREAL_SAVE_FUNCTION_NAME(Archive& ar, const WireTensor& tensor, const std::uint32_t /*version*/) {
  ar(static_cast<uint8_t>(tensor.dtype), tensor.shape, tensor.data);
}

template <class Archive>
void CEREAL_LOAD_FUNCTION_NAME(Archive& ar, WireTensor& tensor, const std::uint32_t version) {
  if (version != 1)
    throw WireError("WireTensor version " + std::to_string(version) + ", expected 1: the peer runs another cleave");
  uint8_t code = 0;
  ar(code, tensor.shape, tensor.data);
  if (code > static_cast<uint8_t>(WireDType::I4_GROUP))
    throw WireError("unknown tensor dtype code " + std::to_string(code) +
                    " (known: 0 f32, 1 f16, 2 bf16, 3 i8_rowscale, 4 i4_group): the peer runs a newer cleave");
  tensor.dtype = static_cast<WireDType>(code);
}

}  // namespace cleave::wire

CEREAL_CLASS_VERSION(cleave::wire::WireTensor, 1);
