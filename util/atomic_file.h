// Writing a file so that readers see either the old file or the whole new
// one: the bytes go to "<path>.tmp", which commit() flushes, fsyncs and
// renames over `path`, then fsyncs the directory, so the new file survives a
// crash once commit() returns. Without commit() (an exception on the way),
// the temporary file is removed and `path` is untouched. The one writer of
// files that must not be seen half-written: checkpoints, GGUF and
// safetensors files, configs, keys and certificates.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace cleave {

struct AtomicFileOptions {
  // The file's permission bits, exactly (the umask does not apply) and from
  // the temporary file's creation on, so a private key (0600) is never
  // readable by others, not even while it is written. Unset: 0666 less the
  // umask, like any file the process creates.
  std::optional<mode_t> mode;
  // Replace an existing `path`. Without it an existing `path` (even a
  // dangling symbolic link) is an error and stays as it was; the check at
  // commit() is atomic (a hard link that fails if the name exists).
  bool overwrite = true;
  // fsync the file before the rename and the directory after it. Only files
  // nobody needs after a crash (a simulation's throw-away CA) may skip it.
  bool durable = true;
};

class AtomicFile {
 public:
  // Throws std::runtime_error naming the file if `path` exists and may not be
  // overwritten, or the temporary file cannot be created.
  explicit AtomicFile(std::string path, AtomicFileOptions options = {});
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
  // Gives the temporary file its final name (rename, or link for !overwrite).
  void publish();
  void sync_directory() const;

  std::string path_, tmp_;
  AtomicFileOptions options_;
  std::unique_ptr<std::FILE, Closer> out_;
  bool committed_ = false;
};

// The whole of `text` as `path`, atomically.
void write_file_atomically(const std::string& path, const std::string& text, AtomicFileOptions options = {});

}  // namespace cleave
