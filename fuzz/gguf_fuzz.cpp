// libFuzzer target: bytes as a GGUF file, and what cleave reads from one: the
// container (gguf::File::from_bytes: header, metadata, tensor directory), the
// model's hyperparameters (config_from_gguf), its tokenizer
// (Tokenizer::from_gguf, then a short encode/decode) and every tensor's data
// (gguf::dequantize, for the types it reads). A malformed file must be
// refused with std::runtime_error (config_from_gguf's consistency checks:
// std::invalid_argument); a crash, a sanitizer report, another exception, a
// hang or an allocation beyond -rss_limit_mb is a finding.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "model/llama_config.h"
#include "model/tokenizer.h"

namespace {

using namespace cleave;

// Tensors larger than this are not converted: the check is of the decoder,
// and a valid small file may still describe a large tensor it truly holds.
constexpr int64_t kMaxDequantizedElements = 1 << 16;

void read_tensors(const gguf::File& file) {
  std::vector<float> values;
  for (const gguf::TensorInfo& tensor : file.tensors()) {
    if (!gguf::is_supported(tensor.type)) continue;
    const int64_t n = tensor.n_elements();
    if (n > kMaxDequantizedElements) continue;
    // The directory promised these bytes are in the file.
    if (tensor.nbytes != gguf::row_bytes(tensor.type, n)) __builtin_trap();
    values.resize(static_cast<size_t>(n));
    gguf::dequantize(tensor.type, tensor.data, values.data(), n);
  }
}

void read_tokenizer(const gguf::File& file) {
  const Tokenizer tokenizer = Tokenizer::from_gguf(file);
  const std::vector<TokenId> ids = tokenizer.encode("The patient's fever \xE2\x96\x81 <s> 42", true, true);
  (void)tokenizer.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const gguf::File> file;
  try {
    file = gguf::File::from_bytes("fuzz.gguf", std::vector<uint8_t>(data, data + size));
  } catch (const std::runtime_error&) {
    return 0;
  }
  try {
    (void)config_from_gguf(*file);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  try {
    read_tokenizer(*file);
  } catch (const std::runtime_error&) {
  }
  read_tensors(*file);
  return 0;
}
