#include "secagg/mask_prg.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "secagg/evp_handles.h"

namespace cleave::secagg {

namespace {

// Key stream produced per EVP_EncryptUpdate call.
constexpr size_t kChunkWords = 8192;  // 64 KiB

uint64_t load_le64(const uint8_t* bytes) {
  if constexpr (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
    uint64_t word;
    std::memcpy(&word, bytes, sizeof word);   // one load
    return word;
  }
  uint64_t word = 0;
  for (int i = 7; i >= 0; --i) word = (word << 8) | bytes[i];
  return word;
}

}  // namespace

void apply_mask(const Key32& seed, bool add, uint64_t* words, size_t n) {
  if (n == 0) return;
  EvpCipherCtxPtr context(secure::check_openssl(EVP_CIPHER_CTX_new(), "EVP_CIPHER_CTX_new"));
  const uint8_t iv[16] = {};
  secure::check_openssl(
      EVP_EncryptInit_ex(context.get(), aes_256_ctr(), nullptr, seed.data(), iv),
      "AES-256-CTR init for the mask");

  // The key stream is the encryption of zeros, done in place chunk by chunk.
  std::vector<uint8_t> stream(std::min(n, kChunkWords) * 8);
  for (size_t done = 0; done < n;) {
    const size_t count = std::min(n - done, kChunkWords);
    const int bytes = static_cast<int>(count * 8);
    std::fill(stream.begin(), stream.begin() + bytes, uint8_t{0});
    int produced = 0;
    secure::check_openssl(
        EVP_EncryptUpdate(context.get(), stream.data(), &produced, stream.data(), bytes),
        "AES-256-CTR key stream for the mask");
    if (produced != bytes) secure::throw_openssl_error("AES-256-CTR returned a short key stream");
    uint64_t* out = words + done;
    if (add) {
      for (size_t i = 0; i < count; ++i) out[i] += load_le64(&stream[i * 8]);
    } else {
      for (size_t i = 0; i < count; ++i) out[i] -= load_le64(&stream[i * 8]);
    }
    done += count;
  }
  OPENSSL_cleanse(stream.data(), stream.size());
}

}  // namespace cleave::secagg
