#include "model/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace cleave {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  out_.reset(std::fopen(tmp_.c_str(), "wb"));
  if (!out_) throw std::runtime_error(tmp_ + ": cannot create: " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  out_.reset();
  std::remove(tmp_.c_str());
}

void AtomicFile::fail(const char* what) {
  const std::string reason = std::strerror(errno);
  out_.reset();
  std::remove(tmp_.c_str());
  committed_ = true;  // nothing left for the destructor to clean up
  throw std::runtime_error(tmp_ + ": " + what + ": " + reason);
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, out_.get()) != bytes) fail("write failed");
}

void AtomicFile::commit() {
  if (std::fflush(out_.get()) != 0) fail("flush failed");
  if (::fsync(::fileno(out_.get())) != 0) fail("fsync failed");
  if (std::fclose(out_.release()) != 0) fail("close failed");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp_.c_str());
    committed_ = true;
    throw std::runtime_error("cannot rename " + tmp_ + " to " + path_ + ": " + reason);
  }
  committed_ = true;
  // The rename lives in the directory: sync it too, or a crash can leave the
  // old file (or none) although commit() returned.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(dir + ": cannot open the directory to sync " + path_ + ": " + std::strerror(errno));
  const int synced = ::fsync(fd);
  const std::string reason = std::strerror(errno);
  ::close(fd);
  if (synced != 0) throw std::runtime_error(dir + ": cannot sync the directory after writing " + path_ + ": " + reason);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace cleave
