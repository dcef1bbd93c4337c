// Writing a file so that readers see either the old file or the whole new
// one: the bytes go to "<path>.tmp", which is flushed, fsynced and renamed
// over `path` by commit(), which then fsyncs the directory, so the new file
// survives a crash once commit() returns. Without commit() (an exception on
// the way), the temporary file is removed and `path` is untouched.
#pragma once

#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>

namespace cleave {

class AtomicFile {
 public:
  // Throws std::runtime_error naming the temporary file if it cannot be created.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void commit();

 private:
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  [[noreturn]] void fail(const char* what);

  std::string path_, tmp_;
  std::unique_ptr<std::FILE, Closer> out_;
  bool committed_ = false;
};

// The whole of `text` as `path`, atomically.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace cleave
