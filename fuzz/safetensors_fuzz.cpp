// libFuzzer target: bytes as a safetensors file (safetensors::File::from_bytes:
// header length, JSON header, entries, offsets tiling the data section). A
// malformed file must be refused with std::runtime_error; a crash, a
// sanitizer report, another exception, a hang or an allocation beyond
// -rss_limit_mb is a finding. Every tensor the reader accepts must lie inside
// the image and hold exactly its shape's bytes.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "lora/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cleave;
  try {
    const safetensors::File file =
        safetensors::File::from_bytes("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
    size_t total = 0;
    for (const safetensors::TensorView& tensor : file.tensors()) {
      size_t n = safetensors::dtype_size(tensor.dtype);
      for (int64_t d : tensor.shape) n *= static_cast<size_t>(d);
      if (n != tensor.bytes) __builtin_trap();
      total += tensor.bytes;
      // Touch the first and last byte: ASan checks they are in the image.
      if (tensor.bytes > 0) {
        volatile uint8_t first = tensor.data[0], last = tensor.data[tensor.bytes - 1];
        (void)first;
        (void)last;
      }
    }
    if (total > size) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
