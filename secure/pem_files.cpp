#include "secure/pem_files.h"

#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/atomic_file.h"

namespace cleave::secure {

namespace {

std::string errno_text() { return std::strerror(errno); }

BioPtr memory_bio() { return BioPtr(check_openssl(BIO_new(BIO_s_mem()), "BIO_new")); }

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(length));
}

BioPtr file_bio(const std::string& path) {
  if (!file_exists(path)) throw std::runtime_error(path + " does not exist");
  return BioPtr(check_openssl(BIO_new_file(path.c_str(), "r"), "cannot open " + path));
}

}  // namespace

void write_file(const std::string& path, const std::string& data, mode_t mode, bool overwrite,
                bool durable) {
  AtomicFileOptions options;
  options.mode = mode;
  options.overwrite = overwrite;
  options.durable = durable;
  write_file_atomically(path, data, options);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + errno_text());
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

bool file_exists(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

EvpPkeyPtr read_private_key(const std::string& path) {
  BioPtr bio = file_bio(path);
  return EvpPkeyPtr(check_openssl(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                  "cannot read a PEM private key from " + path));
}

X509Ptr read_certificate(const std::string& path) {
  BioPtr bio = file_bio(path);
  return X509Ptr(check_openssl(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                               "cannot read a PEM certificate from " + path));
}

X509CrlPtr read_crl(const std::string& path) {
  BioPtr bio = file_bio(path);
  return X509CrlPtr(check_openssl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr),
                                  "cannot read a PEM CRL from " + path));
}

std::string private_key_pem(EVP_PKEY* key) {
  BioPtr bio = memory_bio();
  check_openssl(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
                "PEM_write_bio_PrivateKey");
  return bio_contents(bio.get());
}

std::string certificate_pem(X509* cert) {
  BioPtr bio = memory_bio();
  check_openssl(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  return bio_contents(bio.get());
}

std::string crl_pem(X509_CRL* crl) {
  BioPtr bio = memory_bio();
  check_openssl(PEM_write_bio_X509_CRL(bio.get(), crl), "PEM_write_bio_X509_CRL");
  return bio_contents(bio.get());
}

}  // namespace cleave::secure
