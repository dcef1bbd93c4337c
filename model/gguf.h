// GGUF container: reader (mmap, every metadata type, tensor directory,
// alignment) and writer. No tensors library here: data is exposed as bytes,
// conversion to float lives in gguf_quant.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cleave::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little endian
constexpr uint32_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5,
  FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11,
  FLOAT64 = 12,
};

// ggml tensor type ids as stored in GGUF (ggml.h's enum ggml_type), every one
// up to MXFP4 = 39 that files carry (4, 5, 31-33 and 36-38 were retired).
// Knowing them lets a file open and a tensor cleave cannot convert be refused
// by its type's name; a later id is refused as unknown when the file opens.
enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
  IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
  IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

const char* type_name(TensorType type);   // "Q4_K", or "type 17" if unknown
bool is_known(TensorType type);           // one of the ids above (sizes known)
const char* value_type_name(ValueType type);  // "UINT32", or "type 13" if unknown
// Whether dequantize() (gguf_quant.h) converts it to float: F32, F16, BF16,
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS.
bool is_supported(TensorType type);
// Those type names, comma separated, for error messages.
const std::string& supported_type_names();
int64_t block_size(TensorType type);      // elements per block (1 for F32/F16/BF16)
int64_t block_bytes(TensorType type);     // bytes per block
// Bytes for n_elements of `type`; throws if n_elements is not a multiple of the block size.
uint64_t row_bytes(TensorType type, int64_t n_elements);

struct Value;
using Array = std::vector<Value>;
// One metadata value. Arrays keep their element type so the writer can
// round-trip them exactly (an empty array still has a type).
struct Value {
  ValueType type = ValueType::UINT32;
  ValueType array_type = ValueType::UINT32;  // meaningful when type == ARRAY
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value str(std::string v);
  static Value str_array(std::vector<std::string> v);
  static Value f32_array(const std::vector<float>& v);
  static Value i32_array(const std::vector<int32_t>& v);
  static Value u8(uint8_t v);
  static Value i8(int8_t v);
  static Value u16(uint16_t v);
  static Value i16(int16_t v);
  static Value i64(int64_t v);
  static Value f64(double v);
  // An array of `element_type`; every item must have that type (checked by Writer::set).
  static Value array(ValueType element_type, Array items);

  // Typed access; throws std::runtime_error naming the expected and actual type.
  int64_t as_int() const;        // any integer type
  double as_float() const;       // FLOAT32/FLOAT64 or any integer
  bool as_bool() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  std::vector<std::string> as_strings() const;
  std::vector<float> as_floats() const;
  std::vector<int32_t> as_ints() const;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;   // ggml order: ne[0] is the contiguous (innermost, "in") dimension
  TensorType type = TensorType::F32;
  uint64_t offset = 0;       // relative to the start of the data section
  const uint8_t* data = nullptr;  // into the mapped file
  uint64_t nbytes = 0;
  int64_t n_elements() const;
};

// A read-only, memory-mapped GGUF file. Every structural problem (bad magic,
// unsupported version, truncation, offsets past the end, misalignment,
// duplicate names) throws std::runtime_error naming the file and what is wrong.
class File {
 public:
  static std::shared_ptr<const File> open(const std::string& path);
  // A GGUF image held in memory (a model converted on the fly), validated as
  // open() validates a file; `name` stands for the path in errors. Tensor data
  // is as aligned as the allocation (16 bytes), not to the file's alignment.
  static std::shared_ptr<const File> from_bytes(const std::string& name, std::vector<uint8_t> bytes);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t size() const { return map_size_; }           // bytes in the file
  uint64_t data_offset() const { return data_offset_; } // file offset of the data section

  const std::map<std::string, Value>& metadata() const { return metadata_; }
  const Value* find(const std::string& key) const;   // nullptr if absent
  const Value& get(const std::string& key) const;    // throws "<file>: missing metadata key <key>"
  // Convenience: value of an optional key or a default.
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;  // nullptr if absent
  const TensorInfo& tensor(const std::string& name) const;       // throws naming file and tensor

 private:
  File() = default;
  void parse(const uint8_t* base, uint64_t size);  // header, metadata, tensor directory
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  void* map_ = nullptr;            // open(): the mapping
  std::vector<uint8_t> owned_;     // from_bytes(): the image
  size_t map_size_ = 0;
};

// Writes GGUF v3. Metadata keeps insertion order; tensors are written with
// the given alignment. write() goes to "<path>.tmp" and renames, so a crash
// never leaves a half-written file under the final name.
class Writer {
 public:
  explicit Writer(uint32_t alignment = kDefaultAlignment);
  void set(const std::string& key, Value value);
  // `bytes` must hold row_bytes(type, n_elements(ne)) bytes; copied.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne,
                  const void* bytes, size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> ne, const float* values);
  void write(const std::string& path) const;
  // The same bytes write() puts in the file, for File::from_bytes.
  std::vector<uint8_t> to_bytes() const;

 private:
  std::vector<uint8_t> header() const;  // up to the data section, padded
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  uint32_t alignment_;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace cleave::gguf
