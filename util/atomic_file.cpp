#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace cleave {
namespace {

std::string errno_text() { return std::strerror(errno); }

bool name_exists(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

std::runtime_error exists_error(const std::string& path) {
  return std::runtime_error(path + " already exists and is not overwritten: remove it first");
}

}  // namespace

AtomicFile::AtomicFile(std::string path, AtomicFileOptions options)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), options_(options) {
  if (!options_.overwrite && name_exists(path_)) throw exists_error(path_);
  // A temporary file left by a crash is ours to replace; O_EXCL then makes
  // sure we write a new file, not through a link someone put in its place.
  ::unlink(tmp_.c_str());
  const mode_t creation_mode = options_.mode ? *options_.mode : 0666;
  const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, creation_mode);
  if (fd < 0) throw std::runtime_error(tmp_ + ": cannot create: " + errno_text());
  // open() applied the umask (never more than `mode`); the mode is exact from here on.
  if (options_.mode && ::fchmod(fd, *options_.mode) != 0) {
    const std::string reason = errno_text();
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw std::runtime_error(tmp_ + ": cannot set mode: " + reason);
  }
  out_.reset(::fdopen(fd, "wb"));
  if (!out_) {
    const std::string reason = errno_text();
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw std::runtime_error(tmp_ + ": cannot open for writing: " + reason);
  }
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  out_.reset();
  ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const char* what) {
  const std::string reason = errno_text();
  out_.reset();
  ::unlink(tmp_.c_str());
  committed_ = true;  // nothing left for the destructor to clean up
  throw std::runtime_error(tmp_ + ": " + what + ": " + reason);
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, out_.get()) != bytes) fail("write failed");
}

void AtomicFile::commit() {
  if (std::fflush(out_.get()) != 0) fail("flush failed");
  if (options_.durable && ::fsync(::fileno(out_.get())) != 0) fail("fsync failed");
  if (std::fclose(out_.release()) != 0) fail("close failed");
  publish();
  committed_ = true;
  // The rename lives in the directory: sync it too, or a crash can leave the
  // old file (or none) although commit() returned.
  if (options_.durable) sync_directory();
}

void AtomicFile::publish() {
  if (options_.overwrite) {
    if (std::rename(tmp_.c_str(), path_.c_str()) == 0) return;
    const std::string reason = errno_text();
    ::unlink(tmp_.c_str());
    committed_ = true;
    throw std::runtime_error("cannot rename " + tmp_ + " to " + path_ + ": " + reason);
  }
  // link() fails with EEXIST if the name exists, so a file that appeared
  // since the constructor looked is not replaced either.
  const bool linked = ::link(tmp_.c_str(), path_.c_str()) == 0;
  const int link_errno = errno;
  ::unlink(tmp_.c_str());
  committed_ = true;
  if (linked) return;
  if (link_errno == EEXIST) throw exists_error(path_);
  throw std::runtime_error("cannot link " + tmp_ + " to " + path_ + ": " + std::strerror(link_errno));
}

void AtomicFile::sync_directory() const {
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(dir + ": cannot open the directory to sync " + path_ + ": " + errno_text());
  const int synced = ::fsync(fd);
  const std::string reason = errno_text();
  ::close(fd);
  if (synced != 0) throw std::runtime_error(dir + ": cannot sync the directory after writing " + path_ + ": " + reason);
}

void write_file_atomically(const std::string& path, const std::string& text, AtomicFileOptions options) {
  AtomicFile file(path, options);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace cleave
