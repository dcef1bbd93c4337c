#include "secagg/share_box.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "secagg/evp_handles.h"

namespace cleave::secagg {

namespace {

using secure::check_openssl;

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
// EVP_*Update takes an int length: longer inputs go through in pieces.
constexpr size_t kMaxUpdate = size_t{1} << 30;

using Update = int (*)(EVP_CIPHER_CTX*, unsigned char*, int*, const unsigned char*, int);

// Runs `update` over `in` (out == nullptr: associated data). Returns the
// bytes written or -1 when OpenSSL refuses.
long long update_all(Update update, EVP_CIPHER_CTX* context, const uint8_t* in, size_t size,
                     uint8_t* out) {
  long long written = 0;
  for (size_t done = 0; done < size;) {
    const int piece = static_cast<int>(std::min(size - done, kMaxUpdate));
    int produced = 0;
    if (update(context, out ? out + written : nullptr, &produced, in + done, piece) != 1) return -1;
    written += produced;
    done += static_cast<size_t>(piece);
  }
  return written;
}

const uint8_t* bytes_of(const std::string& text) {
  return reinterpret_cast<const uint8_t*>(text.data());
}

}  // namespace

std::string seal_box(const Key32& key, const std::string& plaintext,
                     const std::string& associated_data) {
  std::string box(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  uint8_t* nonce = reinterpret_cast<uint8_t*>(box.data());
  uint8_t* ciphertext = nonce + kNonceBytes;
  check_openssl(RAND_bytes(nonce, static_cast<int>(kNonceBytes)), "RAND_bytes for a box nonce");

  EvpCipherCtxPtr context(check_openssl(EVP_CIPHER_CTX_new(), "EVP_CIPHER_CTX_new"));
  check_openssl(EVP_EncryptInit_ex(context.get(), aes_256_gcm(), nullptr, key.data(), nonce),
                "AES-256-GCM init");
  if (update_all(EVP_EncryptUpdate, context.get(), bytes_of(associated_data),
                 associated_data.size(), nullptr) < 0 ||
      update_all(EVP_EncryptUpdate, context.get(), bytes_of(plaintext), plaintext.size(),
                 ciphertext) != static_cast<long long>(plaintext.size())) {
    secure::throw_openssl_error("AES-256-GCM encryption");
  }
  int tail = 0;
  check_openssl(EVP_EncryptFinal_ex(context.get(), ciphertext + plaintext.size(), &tail),
                "AES-256-GCM final");
  check_openssl(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes,
                                    ciphertext + plaintext.size()),
                "AES-256-GCM tag");
  return box;
}

std::optional<std::string> open_box(const Key32& key, const std::string& box,
                                    const std::string& associated_data) {
  if (box.size() < kNonceBytes + kTagBytes) return std::nullopt;
  const uint8_t* nonce = bytes_of(box);
  const uint8_t* ciphertext = nonce + kNonceBytes;
  const size_t size = box.size() - kNonceBytes - kTagBytes;
  // EVP_CTRL_AEAD_SET_TAG takes a non-const pointer but only reads the tag.
  uint8_t tag[kTagBytes];
  std::copy(ciphertext + size, ciphertext + size + kTagBytes, tag);

  EvpCipherCtxPtr context(check_openssl(EVP_CIPHER_CTX_new(), "EVP_CIPHER_CTX_new"));
  check_openssl(EVP_DecryptInit_ex(context.get(), aes_256_gcm(), nullptr, key.data(), nonce),
                "AES-256-GCM init");
  std::string plaintext(size, '\0');
  uint8_t* out = reinterpret_cast<uint8_t*>(plaintext.data());
  int tail = 0;
  const bool ok = update_all(EVP_DecryptUpdate, context.get(), bytes_of(associated_data),
                             associated_data.size(), nullptr) >= 0 &&
                  update_all(EVP_DecryptUpdate, context.get(), ciphertext, size, out) ==
                      static_cast<long long>(size) &&
                  EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) == 1 &&
                  EVP_DecryptFinal_ex(context.get(), out + size, &tail) == 1;
  if (!ok) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    ERR_clear_error();
    return std::nullopt;
  }
  return plaintext;
}

}  // namespace cleave::secagg
