#include "wire/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace cleave::wire {
namespace {

// ---- bit-level float conversions (round to nearest even) -------------------

uint32_t float_bits(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float bits_float(uint32_t bits) {
  float value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// After F. Giesen's float_to_half_fast3_rtne: subnormal halves are rounded by
// the FPU itself (adding a magic number), normal ones by integer arithmetic.
uint16_t float_to_half(float value) {
  const uint32_t f32_infinity = 255u << 23;
  const uint32_t f16_overflow = (127u + 16u) << 23;        // 2^16: rounds to inf
  const uint32_t denormal_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t bits = float_bits(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint16_t half = 0;
  if (bits >= f16_overflow) {
    half = bits > f32_infinity ? 0x7e00 : 0x7c00;            // NaN stays NaN, else inf
  } else if (bits < (113u << 23)) {                          // below 2^-14: subnormal or zero
    const float shifted = bits_float(bits) + bits_float(denormal_magic);
    half = static_cast<uint16_t>(float_bits(shifted) - denormal_magic);
  } else {
    const uint32_t mantissa_odd = (bits >> 13) & 1u;
    bits += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu;
    bits += mantissa_odd;
    half = static_cast<uint16_t>(bits >> 13);
  }
  return static_cast<uint16_t>(half | (sign >> 16));
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {                                       // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t float_to_bf16(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);   // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_float(uint16_t bf16) { return bits_float(static_cast<uint32_t>(bf16) << 16); }

// ---- little-endian storage --------------------------------------------------

bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

void store_u16(uint8_t* out, uint16_t value) {
  out[0] = static_cast<uint8_t>(value);
  out[1] = static_cast<uint8_t>(value >> 8);
}

uint16_t load_u16(const uint8_t* in) { return static_cast<uint16_t>(in[0] | (in[1] << 8)); }

void store_f32(uint8_t* out, float value) {
  const uint32_t bits = float_bits(value);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(bits >> (8 * i));
}

float load_f32(const uint8_t* in) {
  const uint32_t bits = static_cast<uint32_t>(in[0]) | (static_cast<uint32_t>(in[1]) << 8) |
                        (static_cast<uint32_t>(in[2]) << 16) | (static_cast<uint32_t>(in[3]) << 24);
  return bits_float(bits);
}

// ---- shapes -----------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

// "index 7 [0,1,3]": the flat index and its coordinates in `shape`.
std::string index_text(const std::vector<int64_t>& shape, int64_t flat) {
  std::vector<int64_t> coords(shape.size(), 0);
  int64_t rest = flat;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] > 0) {
      coords[d] = rest % shape[d];
      rest /= shape[d];
    }
  }
  return "index " + std::to_string(flat) + " " + shape_text(coords);
}

struct RowLayout {
  int64_t rows = 0;
  int64_t row_length = 0;
};

// Rows for I8_ROWSCALE: the last dimension is a row (a scalar is one row).
RowLayout row_layout(const std::vector<int64_t>& shape, int64_t max_elements) {
  if (shape.empty()) return {1, 1};
  const std::vector<int64_t> leading(shape.begin(), shape.end() - 1);
  return {element_count(leading, max_elements), shape.back()};
}

// I4_GROUP: each row cut into groups of kI4GroupSize (the last one shorter).
struct GroupLayout {
  int64_t rows = 0;
  int64_t row_length = 0;
  int64_t groups_per_row = 0;
  int64_t groups() const { return rows * groups_per_row; }   // <= elements, or 0
};

GroupLayout group_layout(const std::vector<int64_t>& shape, int64_t max_elements) {
  const RowLayout row = row_layout(shape, max_elements);
  return {row.rows, row.row_length, (row.row_length + kI4GroupSize - 1) / kI4GroupSize};
}

// The smallest bfloat16 >= max_abs / 7 (max_abs finite, >= 0): then every
// |x| <= max_abs of the group is at most 7 scales, so no code is clamped.
uint16_t i4_scale(float max_abs) {
  float scale = max_abs / 7.0f;
  // float division rounds to nearest, possibly below max_abs / 7 (a product
  // of a float and 7 is exact in double)
  if (static_cast<double>(scale) * 7.0 < static_cast<double>(max_abs))
    scale = std::nextafter(scale, std::numeric_limits<float>::infinity());
  uint32_t bits = float_bits(scale);
  if (bits & 0xffffu) bits = (bits | 0xffffu) + 1u;   // round up (positive: away from zero)
  return static_cast<uint16_t>(bits >> 16);
}

// SplitMix64 (Steele et al.): a tiny generator with a fixed definition, so
// stochastic rounding gives the same codes on every platform for a seed.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void require_finite(float value, const std::vector<int64_t>& shape, int64_t flat, const char* what) {
  if (!std::isfinite(value)) {
    std::ostringstream out;
    out << what << " at " << index_text(shape, flat) << " of a tensor shaped " << shape_text(shape) << " is "
        << value << ": non-finite values are refused (diverged training or a corrupt peer?)";
    throw WireError(out.str());
  }
}

// Throws (naming the first bad index) unless every value is finite. The scan
// compares exponent bits only, so the compiler vectorises it.
void require_all_finite(const float* values, int64_t count, const std::vector<int64_t>& shape, const char* what) {
  uint32_t non_finite = 0;
  for (int64_t i = 0; i < count; ++i) non_finite |= (float_bits(values[i]) & 0x7f800000u) == 0x7f800000u;
  if (!non_finite) return;
  for (int64_t i = 0; i < count; ++i) require_finite(values[i], shape, i, what);
}

// Round half to even of |v| < 2^51 in the default rounding mode, as
// std::nearbyint, but inline (nearbyint is a libm call on baseline x86-64).
double round_half_even(double v) {
  constexpr double kMagic = 6755399441055744.0;   // 1.5 * 2^52
  return (v + kMagic) - kMagic;
}

}  // namespace

std::string to_string(WireDType dtype) {
  switch (dtype) {
    case WireDType::F32: return "f32";
    case WireDType::F16: return "f16";
    case WireDType::BF16: return "bf16";
    case WireDType::I8_ROWSCALE: return "i8_rowscale";
    case WireDType::I4_GROUP: return "i4_group";
  }
  return "unknown(" + std::to_string(static_cast<int>(dtype)) + ")";
}

int64_t element_count(const std::vector<int64_t>& shape, int64_t max_elements) {
  bool has_zero = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0)
      throw WireError("tensor shape " + shape_text(shape) + " has negative dimension " + std::to_string(d));
    has_zero = has_zero || shape[d] == 0;
  }
  if (has_zero) return 0;
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (count > max_elements / dim)
      throw WireError("tensor shape " + shape_text(shape) + " has more than " + std::to_string(max_elements) +
                      " elements: refusing it (a lying peer, or raise the limit)");
    count *= dim;
  }
  return count;
}

size_t expected_data_bytes(WireDType dtype, const std::vector<int64_t>& shape, int64_t max_elements) {
  const auto count = static_cast<size_t>(element_count(shape, max_elements));
  switch (dtype) {
    case WireDType::F32: return count * 4;
    case WireDType::F16:
    case WireDType::BF16: return count * 2;
    case WireDType::I8_ROWSCALE:
      return static_cast<size_t>(row_layout(shape, max_elements).rows) * 4 + count;
    case WireDType::I4_GROUP:
      return static_cast<size_t>(group_layout(shape, max_elements).groups()) * 2 + (count + 1) / 2;
  }
  throw WireError("unknown tensor dtype code " + std::to_string(static_cast<int>(dtype)));
}

WireTensor encode(const float* values, std::vector<int64_t> shape, WireDType dtype, Rounding rounding) {
  const int64_t count = element_count(shape);
  WireTensor tensor;
  tensor.dtype = dtype;
  tensor.data.resize(expected_data_bytes(dtype, shape));
  if (count > 0 && values == nullptr) throw WireError("encode: values is null for shape " + shape_text(shape));
  require_all_finite(values, count, shape, "value");
  uint8_t* out = tensor.data.data();

  switch (dtype) {
    case WireDType::F32:
      if (host_is_little_endian()) {
        if (count > 0) std::memcpy(out, values, static_cast<size_t>(count) * 4);
      } else {
        for (int64_t i = 0; i < count; ++i) store_f32(out + 4 * i, values[i]);
      }
      break;
    case WireDType::F16:
    case WireDType::BF16: {
      const bool half = dtype == WireDType::F16;
      // The inputs are finite, so an all-ones exponent means the value overflowed.
      const uint16_t exponent_mask = half ? 0x7c00u : 0x7f80u;
      uint32_t overflow = 0;
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t packed = half ? float_to_half(values[i]) : float_to_bf16(values[i]);
        overflow |= (packed & exponent_mask) == exponent_mask;
        store_u16(out + 2 * i, packed);
      }
      for (int64_t i = 0; overflow && i < count; ++i) {
        const uint16_t packed = half ? float_to_half(values[i]) : float_to_bf16(values[i]);
        if ((packed & exponent_mask) == exponent_mask) {
          std::ostringstream message;
          message << "value " << values[i] << " at " << index_text(shape, i) << " overflows " << to_string(dtype)
                  << ": send this tensor as f32" << (half ? " or bf16" : "");
          throw WireError(message.str());
        }
      }
      break;
    }
    case WireDType::I8_ROWSCALE: {
      const RowLayout layout = row_layout(shape, kMaxWireElements);
      uint8_t* quantized = out + 4 * layout.rows;
      for (int64_t row = 0; row < layout.rows; ++row) {
        const float* x = values + row * layout.row_length;
        float scale = 0.0f;
        for (int64_t j = 0; j < layout.row_length; ++j) scale = std::max(scale, std::fabs(x[j]));
        store_f32(out + 4 * row, scale);
        uint8_t* q = quantized + row * layout.row_length;
        if (scale == 0.0f) {
          std::memset(q, 0, static_cast<size_t>(layout.row_length));
          continue;
        }
        for (int64_t j = 0; j < layout.row_length; ++j) {
          const double rounded = round_half_even(static_cast<double>(x[j]) / scale * 127.0);
          q[j] = static_cast<uint8_t>(static_cast<int8_t>(rounded));
        }
      }
      break;
    }
    case WireDType::I4_GROUP: {
      const GroupLayout layout = group_layout(shape, kMaxWireElements);
      uint8_t* codes = out + 2 * layout.groups();   // zeroed by resize: the codes are or-ed in
      uint64_t state = rounding.seed;
      int64_t group = 0;
      for (int64_t row = 0; row < layout.rows; ++row) {
        for (int64_t start = 0; start < layout.row_length; start += kI4GroupSize, ++group) {
          const int64_t length = std::min(kI4GroupSize, layout.row_length - start);
          const int64_t first = row * layout.row_length + start;
          float max_abs = 0.0f;
          for (int64_t j = 0; j < length; ++j) max_abs = std::max(max_abs, std::fabs(values[first + j]));
          const uint16_t packed_scale = i4_scale(max_abs);
          store_u16(out + 2 * group, packed_scale);
          const double scale = bf16_to_float(packed_scale);
          if (scale == 0.0) continue;   // codes stay 0
          for (int64_t j = 0; j < length; ++j) {
            const double ratio = static_cast<double>(values[first + j]) / scale;   // in [-7, 7]
            double q = 0;
            if (rounding.stochastic) {
              const double u = static_cast<double>(splitmix64(state) >> 40) * 0x1p-24;   // [0, 1)
              q = std::floor(ratio + u);
            } else {
              q = round_half_even(ratio);
            }
            q = std::clamp(q, -7.0, 7.0);
            const int64_t flat = first + j;
            codes[flat >> 1] |= static_cast<uint8_t>((static_cast<int>(q) & 0xf) << ((flat & 1) * 4));
          }
        }
      }
      break;
    }
    default:
      throw WireError("encode: unknown dtype code " + std::to_string(static_cast<int>(dtype)));
  }
  tensor.shape = std::move(shape);
  return tensor;
}

int64_t checked_element_count(const WireTensor& tensor, int64_t max_elements) {
  const int64_t count = element_count(tensor.shape, max_elements);
  const size_t expected = expected_data_bytes(tensor.dtype, tensor.shape, max_elements);
  if (tensor.data.size() != expected)
    throw WireError(to_string(tensor.dtype) + " tensor shaped " + shape_text(tensor.shape) + " needs " +
                    std::to_string(expected) + " data bytes, got " + std::to_string(tensor.data.size()));
  return count;
}

std::vector<float> decode(const WireTensor& tensor, int64_t max_elements) {
  // Checked before allocating: the shape alone could ask for 2^31 floats.
  std::vector<float> values(static_cast<size_t>(checked_element_count(tensor, max_elements)));
  decode_into(tensor, values.data(), max_elements);
  return values;
}

void decode_into(const WireTensor& tensor, float* values, int64_t max_elements) {
  const auto& shape = tensor.shape;
  const int64_t count = checked_element_count(tensor, max_elements);
  if (count > 0 && values == nullptr) throw WireError("decode_into: output is null for shape " + shape_text(shape));

  const uint8_t* in = tensor.data.data();
  switch (tensor.dtype) {
    case WireDType::F32:
      if (host_is_little_endian()) {
        if (count > 0) std::memcpy(values, in, static_cast<size_t>(count) * 4);
      } else {
        for (int64_t i = 0; i < count; ++i) values[i] = load_f32(in + 4 * i);
      }
      break;
    case WireDType::F16:
      for (int64_t i = 0; i < count; ++i) values[i] = half_to_float(load_u16(in + 2 * i));
      break;
    case WireDType::BF16:
      for (int64_t i = 0; i < count; ++i) values[i] = bf16_to_float(load_u16(in + 2 * i));
      break;
    case WireDType::I8_ROWSCALE: {
      const RowLayout layout = row_layout(shape, max_elements);
      const uint8_t* quantized = in + 4 * layout.rows;
      // Below this scale |q| * scale / 127 (|q| <= 128) stays within float's range.
      const double safe_scale = static_cast<double>(std::numeric_limits<float>::max()) * 127.0 / 128.0;
      for (int64_t row = 0; row < layout.rows; ++row) {
        const float scale = load_f32(in + 4 * row);
        if (!std::isfinite(scale) || scale < 0) {
          std::ostringstream message;
          message << "i8_rowscale scale of row " << row << " is " << scale
                  << ": scales must be finite and >= 0 (a corrupt peer?)";
          throw WireError(message.str());
        }
        const int8_t* q = reinterpret_cast<const int8_t*>(quantized) + row * layout.row_length;
        float* x = values + row * layout.row_length;
        if (scale <= safe_scale) {
          for (int64_t j = 0; j < layout.row_length; ++j) {
            x[j] = static_cast<float>(q[j] * static_cast<double>(scale) / 127.0);
          }
          continue;
        }
        for (int64_t j = 0; j < layout.row_length; ++j) {
          const double value = q[j] * static_cast<double>(scale) / 127.0;
          // A scale near FLT_MAX times 128/127 leaves float's range; make that
          // an explicit inf (caught below) rather than an undefined cast.
          x[j] = std::fabs(value) <= std::numeric_limits<float>::max()
                     ? static_cast<float>(value)
                     : static_cast<float>(std::copysign(std::numeric_limits<double>::infinity(), value));
        }
      }
      break;
    }
    case WireDType::I4_GROUP: {
      const GroupLayout layout = group_layout(shape, max_elements);
      const uint8_t* codes = in + 2 * layout.groups();
      if (count % 2 == 1 && (codes[count / 2] >> 4) != 0) {
        throw WireError("i4_group tensor shaped " + shape_text(shape) + " has a non-zero padding nibble after its " +
                        std::to_string(count) + " codes (a corrupt peer?)");
      }
      int64_t group = 0;
      for (int64_t row = 0; row < layout.rows; ++row) {
        for (int64_t start = 0; start < layout.row_length; start += kI4GroupSize, ++group) {
          const float scale = bf16_to_float(load_u16(in + 2 * group));
          if (!std::isfinite(scale) || scale < 0) {
            std::ostringstream message;
            message << "i4_group scale of group " << group << " (row " << row << ", from column " << start
                    << ") is " << scale << ": scales must be finite and >= 0 (a corrupt peer?)";
            throw WireError(message.str());
          }
          const int64_t end = row * layout.row_length + std::min(start + kI4GroupSize, layout.row_length);
          for (int64_t flat = row * layout.row_length + start; flat < end; ++flat) {
            const int nibble = (codes[flat >> 1] >> ((flat & 1) * 4)) & 0xf;
            // q * scale is exact in float (a 4-bit times an 8-bit significand,
            // barring subnormals)
            // or overflows to inf, which the check below refuses.
            values[flat] = static_cast<float>((nibble ^ 8) - 8) * scale;
          }
        }
      }
      break;
    }
  }
  require_all_finite(values, count, shape, "decoded value");
}

}  // namespace cleave::wire
