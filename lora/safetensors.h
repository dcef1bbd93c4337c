// The safetensors container (Hugging Face): an 8-byte little-endian header
// length N, N bytes of JSON header {"<name>": {"dtype", "shape", "data_offsets"},
// ..., "__metadata__": {string: string}}, then the raw little-endian tensor
// data, offsets relative to its start. The format has no magic or version of
// its own; the reader validates the header instead. No LibTorch here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cleave::safetensors {

// A tensor to write. `data` holds `bytes` bytes, already little-endian.
struct TensorData {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

// Writes tensors contiguously in the given order, header padded with spaces
// to a multiple of 8 bytes. Atomic: "<path>.tmp", fsync, rename.
void write(const std::string& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata);

// A tensor inside a read file: points into the file's buffer.
struct TensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // not aligned in general: copy out with memcpy
  size_t bytes = 0;
};

// Bytes per element of a safetensors dtype name; 0 for an unknown name.
size_t dtype_size(const std::string& dtype);

// A whole file read into memory and validated: header length within the
// file, JSON header an object of well-formed entries, known dtypes, byte
// counts that match the shapes, and offsets that tile the data section
// exactly (no gaps, overlaps or bytes past the end). Errors name the file.
class File {
 public:
  static File read(const std::string& path);
  // A safetensors image held in memory, validated as read() validates a
  // file; `name` stands for the path in errors.
  static File from_bytes(const std::string& name, std::vector<uint8_t> bytes);
  File(File&&) = default;             // views stay valid: the buffer moves with them
  File& operator=(File&&) = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  File() = default;
  std::string path_;
  std::vector<uint8_t> bytes_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace cleave::safetensors
