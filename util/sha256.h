// SHA-256 through OpenSSL's EVP interface, fed in pieces.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace cleave {

class Sha256 {
 public:
  Sha256();  // throws std::runtime_error if OpenSSL cannot set up the digest
  void update(const void* data, size_t bytes);
  // The digest of everything fed so far as 64 lowercase hex digits; the
  // object is spent afterwards.
  std::string hex_digest();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const;
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

}  // namespace cleave
