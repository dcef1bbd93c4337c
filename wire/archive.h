// Cereal archives for wire message bodies. The bytes are exactly cereal's
// PortableBinary layout (one leading byte 1 = little-endian, then
// little-endian values, uint64 size prefixes), so cereal's own
// PortableBinary archives read and write the same bodies. We have our own pair
// because the input side must be bounds-checked against a lying peer:
//  - every read checks the bytes left and throws WireError when truncated;
//  - every container size prefix is checked against the bytes left, and
//    std::vector is loaded by a size-checked overload, so a length prefix of
//    2^60 fails at once instead of allocating;
//  - a bool byte other than 0 or 1 is rejected.
// Wire messages should use std::vector, std::string, std::map and fixed-width
// scalars; types such as std::deque/std::list would still allocate
// size-prefix elements (bounded by the body size) before reading them.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "wire/error.h"

namespace cleave::wire {

namespace archive_detail {

inline bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

template <std::size_t Width>
void reverse_each(uint8_t* data, std::size_t size) {
  for (std::size_t at = 0; at + Width <= size; at += Width) std::reverse(data + at, data + at + Width);
}

}  // namespace archive_detail

class WireOutputArchive : public cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  // Appends to `out` (which may already hold a frame header).
  explicit WireOutputArchive(std::vector<uint8_t>& out)
      : cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision>(this), out_(&out) {
    const uint8_t little_endian = 1;
    saveBinary<1>(&little_endian, 1);
  }

  // Writes nothing, only counts the body's bytes into `bytes`, so that a
  // frame can be allocated once at its final size (megabyte tensors would
  // otherwise be copied again on every growth of the buffer).
  explicit WireOutputArchive(std::size_t& bytes)
      : cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision>(this), counted_(&bytes) {
    *counted_ = 0;
    const uint8_t little_endian = 1;
    saveBinary<1>(&little_endian, 1);
  }

  template <std::size_t Width>
  void saveBinary(const void* data, std::size_t size) {
    if (size == 0) return;
    if (!out_) {
      *counted_ += size;
      return;
    }
    const auto* bytes = static_cast<const uint8_t*>(data);
    const std::size_t at = out_->size();
    out_->insert(out_->end(), bytes, bytes + size);
    if (Width > 1 && !archive_detail::host_is_little_endian())
      archive_detail::reverse_each<Width>(out_->data() + at, size);
  }

 private:
  std::vector<uint8_t>* out_ = nullptr;
  std::size_t* counted_ = nullptr;
};

class WireInputArchive : public cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision> {
 public:
  // Reads from [data, data + size); the caller keeps the bytes alive.
  WireInputArchive(const uint8_t* data, std::size_t size)
      : cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision>(this),
        begin_(data),
        cursor_(data),
        end_(data + size) {
    uint8_t little_endian = 0;
    loadBinary<1>(&little_endian, 1);
    if (little_endian > 1)
      throw WireError("message body starts with endianness byte " + std::to_string(little_endian) +
                      ", expected 0 or 1: not a cereal PortableBinary body");
    swap_ = (little_endian == 1) != archive_detail::host_is_little_endian();
  }

  template <std::size_t Width>
  void loadBinary(void* data, std::size_t size) {
    if (size > remaining())
      throw WireError("message body truncated: need " + std::to_string(size) + " bytes at offset " +
                      std::to_string(offset()) + ", only " + std::to_string(remaining()) + " left");
    if (size == 0) return;
    std::memcpy(data, cursor_, size);
    cursor_ += size;
    if (Width > 1 && swap_) archive_detail::reverse_each<Width>(static_cast<uint8_t*>(data), size);
  }

  // The next `size` bytes, in place (bounds-checked like loadBinary).
  const uint8_t* take(std::size_t size) {
    if (size > remaining())
      throw WireError("message body truncated: need " + std::to_string(size) + " bytes at offset " +
                      std::to_string(offset()) + ", only " + std::to_string(remaining()) + " left");
    const uint8_t* at = cursor_;
    cursor_ += size;
    return at;
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - cursor_); }
  std::size_t offset() const { return static_cast<std::size_t>(cursor_ - begin_); }

 private:
  const uint8_t* begin_;
  const uint8_t* cursor_;
  const uint8_t* end_;
  bool swap_ = false;
};

// Scalars.
template <class T>
std::enable_if_t<std::is_arithmetic<T>::value> CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const T& value) {
  static_assert(!std::is_floating_point<T>::value || std::numeric_limits<T>::is_iec559,
                "the wire carries IEEE 754 floats only");
  ar.template saveBinary<sizeof(T)>(&value, sizeof(T));
}

template <class T>
std::enable_if_t<std::is_arithmetic<T>::value> CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, T& value) {
  static_assert(!std::is_floating_point<T>::value || std::numeric_limits<T>::is_iec559,
                "the wire carries IEEE 754 floats only");
  if constexpr (std::is_same<T, bool>::value) {
    uint8_t byte = 0;
    ar.template loadBinary<1>(&byte, 1);
    if (byte > 1)
      throw WireError("bool at offset " + std::to_string(ar.offset() - 1) + " is " + std::to_string(byte) +
                      ", expected 0 or 1");
    value = byte == 1;
  } else {
    ar.template loadBinary<sizeof(T)>(&value, sizeof(T));
  }
}

// Names are not written (binary archive).
template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(WireInputArchive, WireOutputArchive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& named) {
  ar(named.value);
}

// Container size prefixes: a container cannot hold more elements than there
// are bytes left (every element takes at least one byte).
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::SizeTag<T>& tag) {
  ar(tag.size);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::SizeTag<T>& tag) {
  ar(tag.size);
  if (tag.size > ar.remaining())
    throw WireError("container size " + std::to_string(tag.size) + " at offset " +
                    std::to_string(ar.offset() - sizeof(tag.size)) + " exceeds the " +
                    std::to_string(ar.remaining()) + " bytes left in the message body");
}

// Raw runs of scalars (vector and string payloads).
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::BinaryData<T>& run) {
  using Element = std::remove_pointer_t<T>;
  ar.template saveBinary<sizeof(Element)>(run.data, static_cast<std::size_t>(run.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::BinaryData<T>& run) {
  using Element = std::remove_pointer_t<T>;
  ar.template loadBinary<sizeof(Element)>(run.data, static_cast<std::size_t>(run.size));
}

// Size-checked vector loads; more specialised than cereal's, so they win.
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, std::vector<T, A>& values) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  if constexpr (std::is_arithmetic<T>::value) {
    if (size > ar.remaining() / sizeof(T))
      throw WireError("vector of " + std::to_string(size) + " elements of " + std::to_string(sizeof(T)) +
                      " bytes at offset " + std::to_string(ar.offset()) + " exceeds the " +
                      std::to_string(ar.remaining()) + " bytes left in the message body");
    if constexpr (sizeof(T) == 1) {   // bytes (tensor data): one copy, no zero fill first
      const uint8_t* bytes = ar.take(static_cast<std::size_t>(size));
      values.assign(bytes, bytes + size);
    } else {
      values.resize(static_cast<std::size_t>(size));
      ar(cereal::binary_data(values.data(), static_cast<std::size_t>(size) * sizeof(T)));
    }
  } else {
    // Grow as elements actually arrive instead of trusting the prefix.
    values.clear();
    values.reserve(static_cast<std::size_t>(std::min<cereal::size_type>(size, 1024)));
    for (cereal::size_type i = 0; i < size; ++i) {
      values.emplace_back();
      ar(values.back());
    }
  }
}

template <class A>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, std::vector<bool, A>& values) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));   // checked: one byte per bool
  values.resize(static_cast<std::size_t>(size));
  for (cereal::size_type i = 0; i < size; ++i) {
    bool value = false;
    ar(value);
    values[static_cast<std::size_t>(i)] = value;
  }
}

}  // namespace cleave::wire

CEREAL_SETUP_ARCHIVE_TRAITS(cleave::wire::WireInputArchive, cleave::wire::WireOutputArchive)
