#include "secure/pem_files.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cleave::secure {

namespace {

std::string errno_text() { return std::strerror(errno); }

struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(const std::string& path, const std::string& data, mode_t mode, int flags,
               bool durable) {
  FileDescriptor file;
  file.fd = ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (file.fd < 0) {
    if (errno == EEXIST) {
      throw std::runtime_error(path + " already exists: remove it or pass force to overwrite");
    }
    throw std::runtime_error("cannot create " + path + ": " + errno_text());
  }
  if (::fchmod(file.fd, mode) != 0) {
    throw std::runtime_error("cannot set the mode of " + path + ": " + errno_text());
  }
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(file.fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot write " + path + ": " + errno_text());
    written += static_cast<size_t>(n);
  }
  if (durable && ::fsync(file.fd) != 0) {
    throw std::runtime_error("cannot sync " + path + ": " + errno_text());
  }
}

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
  if (!overwrite) {
    write_all(path, data, mode, O_CREAT | O_EXCL, durable);
    return;
  }
  const std::string temporary = path + ".tmp";
  ::unlink(temporary.c_str());
  write_all(temporary, data, mode, O_CREAT | O_EXCL, durable);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot replace " + path + ": " + reason);
  }
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
