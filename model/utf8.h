// UTF-8 by its encoding rules alone (no character tables): how long a
// sequence is, and whether it is well-formed.
#pragma once

#include <cstddef>

namespace cleave {

// Bytes in the UTF-8 sequence that starts with `lead`. A stray continuation
// byte counts as a one-byte character, as in llama.cpp, so any input splits.
inline size_t utf8_sequence_length(unsigned char lead) {
  static const size_t lengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lengths[lead >> 4];
}

// Length of the well-formed UTF-8 character at `p` (RFC 3629: no overlong
// forms, no surrogates, nothing past U+10FFFF), or 0 if there is none.
inline size_t valid_utf8_length(const unsigned char* p, size_t available) {
  if (available == 0) return 0;
  const unsigned char lead = p[0];
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (available < length || p[1] < second_min || p[1] > second_max) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  }
  return length;
}

}  // namespace cleave
