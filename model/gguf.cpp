// GGUF reader and writer. Layout (little endian, v2/v3):
//   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x (string key, u32 value type, value),
//   n_tensors x (string name, u32 n_dims, n_dims x i64 ne, u32 type, u64 offset),
//   padding to `alignment`, then the data section (tensor offsets are relative to it).
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements.
#include "model/gguf.h"

#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace cleave::gguf {

namespace {

constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 32;  // nested arrays deeper than this are treated as corrupt
constexpr uint32_t kMaxAlignment = 1u << 24;

struct TypeTraits {
  TensorType type;
  const char* name;
  int64_t block_size;
  int64_t block_bytes;
  bool supported;  // gguf_quant.cpp dequantizes it
};

// Block sizes of ggml-common.h (QK_K = 256).
constexpr TypeTraits kTypes[] = {
    {TensorType::F32, "F32", 1, 4, true},          {TensorType::F16, "F16", 1, 2, true},
    {TensorType::BF16, "BF16", 1, 2, true},        {TensorType::Q4_0, "Q4_0", 32, 18, true},
    {TensorType::Q4_1, "Q4_1", 32, 20, true},      {TensorType::Q5_0, "Q5_0", 32, 22, true},
    {TensorType::Q5_1, "Q5_1", 32, 24, true},      {TensorType::Q8_0, "Q8_0", 32, 34, true},
    {TensorType::Q2_K, "Q2_K", 256, 84, true},     {TensorType::Q3_K, "Q3_K", 256, 110, true},
    {TensorType::Q4_K, "Q4_K", 256, 144, true},    {TensorType::Q5_K, "Q5_K", 256, 176, true},
    {TensorType::Q6_K, "Q6_K", 256, 210, true},    {TensorType::IQ4_NL, "IQ4_NL", 32, 18, true},
    {TensorType::IQ4_XS, "IQ4_XS", 256, 136, true},
    // Known, so that their sizes are checked and their names reported, but not read.
    {TensorType::Q8_1, "Q8_1", 32, 36, false},     {TensorType::Q8_K, "Q8_K", 256, 292, false},
    {TensorType::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    {TensorType::IQ2_XS, "IQ2_XS", 256, 74, false},
    {TensorType::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    {TensorType::IQ1_S, "IQ1_S", 256, 50, false},  {TensorType::IQ3_S, "IQ3_S", 256, 110, false},
    {TensorType::IQ2_S, "IQ2_S", 256, 82, false},  {TensorType::IQ1_M, "IQ1_M", 256, 56, false},
    {TensorType::TQ1_0, "TQ1_0", 256, 54, false},  {TensorType::TQ2_0, "TQ2_0", 256, 66, false},
    {TensorType::MXFP4, "MXFP4", 32, 17, false},   {TensorType::I8, "I8", 1, 1, false},
    {TensorType::I16, "I16", 1, 2, false},         {TensorType::I32, "I32", 1, 4, false},
    {TensorType::I64, "I64", 1, 8, false},         {TensorType::F64, "F64", 1, 8, false},
};

const TypeTraits* find_traits(TensorType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

const TypeTraits& traits_or_throw(TensorType type) {
  const TypeTraits* t = find_traits(type);
  if (!t) {
    throw std::runtime_error("unknown ggml tensor type " +
                             std::to_string(static_cast<uint32_t>(type)));
  }
  return *t;
}

bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

// Size on disk of a fixed-size value type; 0 for STRING and ARRAY.
uint64_t fixed_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    default: return 0;
  }
}

bool is_unsigned(ValueType t) {
  return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 ||
         t == ValueType::UINT64;
}
bool is_signed(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
         t == ValueType::INT64;
}
bool is_float(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

// a * b, or nullopt when it does not fit in uint64.
std::optional<uint64_t> mul_u64(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

// Bounds-checked reads over the mapped file. Knows which part of the file it
// is in, so a truncation error says where it happened.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* base, uint64_t size)
      : path_(path), base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  void seek(uint64_t pos) { pos_ = pos; }

  // Where we are, for messages: "metadata entry 3 (general.name) element 7".
  std::string section;
  std::vector<int64_t> elements;  // array element indices, outermost first

  std::string where() const {
    std::string w = section;
    for (int64_t e : elements) w += " element " + std::to_string(e);
    return w;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(path_ + ": " + where() + ": " + what);
  }

  [[noreturn]] void fail_truncated(const std::string& what) const {
    throw std::runtime_error(path_ + ": truncated or corrupt: " + where() + ": " + what);
  }

  void require(uint64_t n, const char* what) const {
    if (n <= size_ - pos_) return;
    std::ostringstream msg;
    msg << path_ << ": truncated: " << where() << ": " << what;
    if (n <= std::numeric_limits<uint64_t>::max() - pos_) {
      msg << " ends at byte " << pos_ + n;
    } else {
      msg << " of " << n << " bytes starts at byte " << pos_;
    }
    msg << " but the file has " << size_ << " bytes";
    throw std::runtime_error(msg.str());
  }

  template <class T>
  T read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    require(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    if (len > size_ - pos_) {
      std::ostringstream msg;
      if (len <= std::numeric_limits<uint64_t>::max() - pos_) {
        msg << path_ << ": truncated: " << where() << ": " << what << " of " << len
            << " bytes ends at byte " << pos_ + len << " but the file has " << size_ << " bytes";
      } else {
        msg << path_ << ": truncated or corrupt: " << where() << ": " << what << " has length "
            << len << " at byte " << pos_ - 8 << ", more than the file's " << size_ << " bytes";
      }
      throw std::runtime_error(msg.str());
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return s;
  }

  const uint8_t* at(uint64_t pos) const { return base_ + pos; }

 private:
  const std::string& path_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

Value read_value(Cursor& c, ValueType type, int depth);

Value read_array(Cursor& c, int depth) {
  if (depth >= kMaxArrayDepth) {
    c.fail("arrays nested more than " + std::to_string(kMaxArrayDepth) +
           " deep: the file is corrupt");
  }
  const uint32_t raw_type = c.read<uint32_t>("array element type");
  if (!is_known_value_type(raw_type)) {
    c.fail("unknown array element type " + std::to_string(raw_type) +
           " (known: 0..12): the file is corrupt or from a newer GGUF version");
  }
  const auto elem_type = static_cast<ValueType>(raw_type);
  const uint64_t count = c.read<uint64_t>("array length");
  // Every element takes at least this many bytes; reject impossible counts
  // before allocating anything.
  uint64_t min_elem = fixed_size(elem_type);
  if (elem_type == ValueType::STRING) min_elem = 8;
  if (elem_type == ValueType::ARRAY) min_elem = 12;
  const auto min_bytes = mul_u64(count, min_elem);
  if (!min_bytes || *min_bytes > c.size() - c.pos()) {
    std::ostringstream msg;
    msg << "array of " << count << " " << value_type_name(elem_type) << " at byte "
        << c.pos() - 12 << " needs at least " << (min_bytes ? *min_bytes : count)
        << " more bytes, only " << c.size() - c.pos() << " are left: the file has " << c.size()
        << " bytes";
    c.fail_truncated(msg.str());
  }
  Value v;
  v.type = ValueType::ARRAY;
  v.array_type = elem_type;
  Array items;
  // Corrupt counts are bounded by the file size above; still, grow large arrays
  // as elements actually parse rather than trusting the count for one allocation.
  items.reserve(std::min<uint64_t>(count, 1u << 16));
  c.elements.push_back(0);
  for (uint64_t i = 0; i < count; ++i) {
    c.elements.back() = static_cast<int64_t>(i);
    items.push_back(read_value(c, elem_type, depth + 1));
  }
  c.elements.pop_back();
  v.data = std::move(items);
  return v;
}

Value read_value(Cursor& c, ValueType type, int depth) {
  Value v;
  v.type = type;
  switch (type) {
    case ValueType::UINT8: v.data = uint64_t{c.read<uint8_t>("UINT8 value")}; break;
    case ValueType::INT8: v.data = int64_t{c.read<int8_t>("INT8 value")}; break;
    case ValueType::UINT16: v.data = uint64_t{c.read<uint16_t>("UINT16 value")}; break;
    case ValueType::INT16: v.data = int64_t{c.read<int16_t>("INT16 value")}; break;
    case ValueType::UINT32: v.data = uint64_t{c.read<uint32_t>("UINT32 value")}; break;
    case ValueType::INT32: v.data = int64_t{c.read<int32_t>("INT32 value")}; break;
    case ValueType::UINT64: v.data = c.read<uint64_t>("UINT64 value"); break;
    case ValueType::INT64: v.data = c.read<int64_t>("INT64 value"); break;
    case ValueType::FLOAT32: v.data = double{c.read<float>("FLOAT32 value")}; break;
    case ValueType::FLOAT64: v.data = c.read<double>("FLOAT64 value"); break;
    case ValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>("BOOL value");
      if (b > 1) c.fail("BOOL value is " + std::to_string(b) + ", expected 0 or 1");
      v.data = b != 0;
      break;
    }
    case ValueType::STRING: v.data = c.read_string("string"); break;
    case ValueType::ARRAY: return read_array(c, depth);
  }
  return v;
}

struct FdCloser {
  void operator()(int* fd) const {
    if (fd && *fd >= 0) ::close(*fd);
    delete fd;
  }
};
using UniqueFd = std::unique_ptr<int, FdCloser>;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// ---------------------------------------------------------------- type info

const char* type_name(TensorType type) {
  if (const TypeTraits* t = find_traits(type)) return t->name;
  thread_local std::string unknown;
  unknown = "type " + std::to_string(static_cast<uint32_t>(type));
  return unknown.c_str();
}

bool is_known(TensorType type) { return find_traits(type) != nullptr; }

bool is_supported(TensorType type) {
  const TypeTraits* t = find_traits(type);
  return t && t->supported;
}

const std::string& supported_type_names() {
  static const std::string names = [] {
    std::string list;
    for (const auto& t : kTypes) {
      if (t.supported) list += std::string(list.empty() ? "" : ", ") + t.name;
    }
    return list;
  }();
  return names;
}

int64_t block_size(TensorType type) { return traits_or_throw(type).block_size; }
int64_t block_bytes(TensorType type) { return traits_or_throw(type).block_bytes; }

uint64_t row_bytes(TensorType type, int64_t n_elements) {
  const TypeTraits& t = traits_or_throw(type);
  if (n_elements < 0 || n_elements % t.block_size != 0) {
    throw std::runtime_error(std::string(t.name) + " holds blocks of " +
                             std::to_string(t.block_size) + " elements; " +
                             std::to_string(n_elements) + " elements is not a multiple");
  }
  const auto bytes = mul_u64(static_cast<uint64_t>(n_elements / t.block_size),
                             static_cast<uint64_t>(t.block_bytes));
  if (!bytes) throw std::runtime_error("tensor size overflows 64 bits");
  return *bytes;
}

const char* value_type_name(ValueType type) {
  static const char* const names[] = {"UINT8",  "INT8",   "UINT16", "INT16", "UINT32",
                                      "INT32",  "FLOAT32", "BOOL",  "STRING", "ARRAY",
                                      "UINT64", "INT64",  "FLOAT64"};
  const auto i = static_cast<uint32_t>(type);
  if (i < sizeof(names) / sizeof(names[0])) return names[i];
  thread_local std::string unknown;
  unknown = "type " + std::to_string(i);
  return unknown.c_str();
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---------------------------------------------------------------- Value

namespace {
Value scalar(ValueType type, std::variant<uint64_t, int64_t, double, bool, std::string, Array> d) {
  Value v;
  v.type = type;
  v.data = std::move(d);
  return v;
}

[[noreturn]] void wrong_type(const char* expected, const Value& v) {
  std::string actual = value_type_name(v.type);
  if (v.type == ValueType::ARRAY) actual += std::string(" of ") + value_type_name(v.array_type);
  throw std::runtime_error(std::string("metadata value is ") + actual + ", expected " + expected);
}
}  // namespace

Value Value::u8(uint8_t v) { return scalar(ValueType::UINT8, uint64_t{v}); }
Value Value::i8(int8_t v) { return scalar(ValueType::INT8, int64_t{v}); }
Value Value::u16(uint16_t v) { return scalar(ValueType::UINT16, uint64_t{v}); }
Value Value::i16(int16_t v) { return scalar(ValueType::INT16, int64_t{v}); }
Value Value::u32(uint32_t v) { return scalar(ValueType::UINT32, uint64_t{v}); }
Value Value::i32(int32_t v) { return scalar(ValueType::INT32, int64_t{v}); }
Value Value::u64(uint64_t v) { return scalar(ValueType::UINT64, v); }
Value Value::i64(int64_t v) { return scalar(ValueType::INT64, v); }
Value Value::f32(float v) { return scalar(ValueType::FLOAT32, double{v}); }
Value Value::f64(double v) { return scalar(ValueType::FLOAT64, v); }
Value Value::boolean(bool v) { return scalar(ValueType::BOOL, v); }
Value Value::str(std::string v) { return scalar(ValueType::STRING, std::move(v)); }

Value Value::array(ValueType element_type, Array items) {
  Value v = scalar(ValueType::ARRAY, std::move(items));
  v.array_type = element_type;
  return v;
}

Value Value::str_array(std::vector<std::string> v) {
  Array items;
  items.reserve(v.size());
  for (auto& s : v) items.push_back(str(std::move(s)));
  return array(ValueType::STRING, std::move(items));
}

Value Value::f32_array(const std::vector<float>& v) {
  Array items;
  items.reserve(v.size());
  for (float f : v) items.push_back(f32(f));
  return array(ValueType::FLOAT32, std::move(items));
}

Value Value::i32_array(const std::vector<int32_t>& v) {
  Array items;
  items.reserve(v.size());
  for (int32_t i : v) items.push_back(i32(i));
  return array(ValueType::INT32, std::move(items));
}

int64_t Value::as_int() const {
  if (is_signed(type)) return std::get<int64_t>(data);
  if (is_unsigned(type)) {
    const uint64_t u = std::get<uint64_t>(data);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw std::runtime_error("metadata value " + std::to_string(u) +
                               " does not fit in a signed 64-bit integer");
    }
    return static_cast<int64_t>(u);
  }
  wrong_type("an integer", *this);
}

double Value::as_float() const {
  if (is_float(type)) return std::get<double>(data);
  if (is_signed(type)) return static_cast<double>(std::get<int64_t>(data));
  if (is_unsigned(type)) return static_cast<double>(std::get<uint64_t>(data));
  wrong_type("a number", *this);
}

bool Value::as_bool() const {
  if (type != ValueType::BOOL) wrong_type("BOOL", *this);
  return std::get<bool>(data);
}

const std::string& Value::as_string() const {
  if (type != ValueType::STRING) wrong_type("STRING", *this);
  return std::get<std::string>(data);
}

const Array& Value::as_array() const {
  if (type != ValueType::ARRAY) wrong_type("ARRAY", *this);
  return std::get<Array>(data);
}

std::vector<std::string> Value::as_strings() const {
  if (type != ValueType::ARRAY || array_type != ValueType::STRING) {
    wrong_type("ARRAY of STRING", *this);
  }
  std::vector<std::string> out;
  out.reserve(as_array().size());
  for (const Value& v : as_array()) out.push_back(v.as_string());
  return out;
}

std::vector<float> Value::as_floats() const {
  if (type != ValueType::ARRAY || array_type == ValueType::STRING ||
      array_type == ValueType::ARRAY || array_type == ValueType::BOOL) {
    wrong_type("ARRAY of numbers", *this);
  }
  std::vector<float> out;
  out.reserve(as_array().size());
  for (const Value& v : as_array()) out.push_back(static_cast<float>(v.as_float()));
  return out;
}

std::vector<int32_t> Value::as_ints() const {
  if (type != ValueType::ARRAY || !(is_signed(array_type) || is_unsigned(array_type))) {
    wrong_type("ARRAY of integers", *this);
  }
  std::vector<int32_t> out;
  out.reserve(as_array().size());
  for (const Value& v : as_array()) {
    const int64_t i = v.as_int();
    if (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max()) {
      throw std::runtime_error("metadata array element " + std::to_string(i) +
                               " does not fit in a 32-bit integer");
    }
    out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

// ---------------------------------------------------------------- File

std::shared_ptr<const File> File::open(const std::string& path) {
  UniqueFd fd(new int(::open(path.c_str(), O_RDONLY | O_CLOEXEC)));
  if (*fd < 0) throw std::runtime_error(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(*fd, &st) != 0) throw std::runtime_error(path + ": cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(path + ": not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) throw std::runtime_error(path + ": empty file (0 bytes), not a GGUF file");

  std::shared_ptr<File> file(new File());
  file->path_ = path;
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, *fd, 0);
  if (map == MAP_FAILED) throw std::runtime_error(path + ": cannot mmap: " + errno_text());
  file->map_ = map;  // owned from here: ~File unmaps it
  file->map_size_ = size;

  file->parse(static_cast<const uint8_t*>(map), size);
  return file;
}

std::shared_ptr<const File> File::from_bytes(const std::string& name, std::vector<uint8_t> bytes) {
  if (bytes.empty()) throw std::runtime_error(name + ": empty (0 bytes), not a GGUF file");
  std::shared_ptr<File> file(new File());
  file->path_ = name;
  file->owned_ = std::move(bytes);
  file->map_size_ = file->owned_.size();
  file->parse(file->owned_.data(), file->owned_.size());
  return file;
}

void File::parse(const uint8_t* base, uint64_t size) {
  Cursor c(path_, base, size);
  c.section = "header";
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    throw std::runtime_error(path_ + ": not a GGUF file (magic " + hex +
                             ", expected 0x46554747 \"GGUF\")");
  }
  const uint32_t version = c.read<uint32_t>("version");
  if (version != 2 && version != 3) {
    std::string hint;
    if (version == 1) hint = ": GGUF v1 is obsolete, convert the model with a current llama.cpp";
    if ((version & 0xffff) == 0 && version != 0) hint = ": looks like a big-endian GGUF file";
    throw std::runtime_error(path_ + ": unsupported GGUF version " + std::to_string(version) +
                             " (supported: 2, 3)" + hint);
  }
  version_ = version;
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.section = "metadata entry " + std::to_string(i);
    std::string key = c.read_string("key");
    c.section += " (" + key + ")";
    const uint32_t raw_type = c.read<uint32_t>("value type");
    if (!is_known_value_type(raw_type)) {
      c.fail("unknown value type " + std::to_string(raw_type) +
             " (known: 0..12): the file is corrupt or from a newer GGUF version");
    }
    Value value = read_value(c, static_cast<ValueType>(raw_type), 0);
    if (!metadata_.emplace(key, std::move(value)).second) {
      c.fail("duplicate metadata key \"" + key + "\"");
    }
  }

  if (const Value* a = find("general.alignment")) {
    c.section = "metadata general.alignment";
    if (!is_unsigned(a->type) && !is_signed(a->type)) {
      c.fail(std::string("is ") + value_type_name(a->type) + ", expected UINT32");
    }
    const int64_t alignment = a->as_int();
    if (alignment <= 0 || alignment > kMaxAlignment || (alignment & (alignment - 1)) != 0) {
      c.fail("alignment " + std::to_string(alignment) + " is not a power of two up to " +
             std::to_string(kMaxAlignment));
    }
    alignment_ = static_cast<uint32_t>(alignment);
  }

  // Counts are not trusted for allocation: a corrupt count ends in a truncation error.
  tensors_.reserve(std::min<uint64_t>(n_tensors, 1u << 16));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.section = "tensor directory entry " + std::to_string(i);
    TensorInfo t;
    t.name = c.read_string("tensor name");
    c.section += " (" + t.name + ")";
    const uint32_t n_dims = c.read<uint32_t>("dimension count");
    if (n_dims > kMaxDims) {
      c.fail("has " + std::to_string(n_dims) + " dimensions, at most " +
             std::to_string(kMaxDims) + " are allowed");
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = c.read<int64_t>("dimension");
      if (ne < 0) c.fail("dimension " + std::to_string(d) + " is negative (" + std::to_string(ne) + ")");
      const auto product = mul_u64(n_elements, static_cast<uint64_t>(ne));
      if (!product || *product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c.fail("element count overflows 64 bits");
      }
      n_elements = *product;
      t.ne.push_back(ne);
    }
    const uint32_t raw_type = c.read<uint32_t>("tensor type");
    t.type = static_cast<TensorType>(raw_type);
    if (!is_known(t.type)) {
      c.fail("unknown tensor type " + std::to_string(raw_type) +
             ": the file is corrupt or uses a ggml type cleave does not know");
    }
    t.offset = c.read<uint64_t>("data offset");
    const int64_t row = t.ne.empty() ? 1 : t.ne[0];
    if (row % block_size(t.type) != 0) {
      c.fail(std::string("row of ") + std::to_string(row) + " elements is not a multiple of the " +
             type_name(t.type) + " block size " + std::to_string(block_size(t.type)));
    }
    const auto nbytes = mul_u64(n_elements / block_size(t.type), block_bytes(t.type));
    if (!nbytes) c.fail("byte size overflows 64 bits");
    t.nbytes = *nbytes;
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      c.fail("duplicate tensor name \"" + t.name + "\"");
    }
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = align_up(c.pos(), alignment_);
  data_offset_ = data_start;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorInfo& t = tensors_[i];
    const std::string where = path_ + ": tensor " + t.name + " (" + type_name(t.type) + ")";
    if (t.offset % alignment_ != 0) {
      throw std::runtime_error(where + ": data offset " + std::to_string(t.offset) +
                               " is not a multiple of the alignment " +
                               std::to_string(alignment_) + ": the file is corrupt");
    }
    const uint64_t available = data_start <= size ? size - data_start : 0;
    if (data_start > size || t.offset > available || t.nbytes > available - t.offset) {
      throw std::runtime_error(
          where + ": truncated or corrupt: data at byte " + std::to_string(data_start) + " + " +
          std::to_string(t.offset) + " needs " + std::to_string(t.nbytes) +
          " bytes but the file has " + std::to_string(size) + " bytes");
    }
    t.data = base + data_start + t.offset;
  }
}

File::~File() {
  if (map_) ::munmap(map_, map_size_);
}

const Value* File::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const Value& File::get(const std::string& key) const {
  const Value* v = find(key);
  if (!v) throw std::runtime_error(path_ + ": missing metadata key " + key);
  return *v;
}

namespace {
template <class F>
auto with_key(const std::string& path, const std::string& key, F&& f) {
  try {
    return f();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path + ": metadata key " + key + ": " + e.what());
  }
}
}  // namespace

int64_t File::get_int(const std::string& key, int64_t fallback) const {
  const Value* v = find(key);
  return v ? with_key(path_, key, [&] { return v->as_int(); }) : fallback;
}

double File::get_float(const std::string& key, double fallback) const {
  const Value* v = find(key);
  return v ? with_key(path_, key, [&] { return v->as_float(); }) : fallback;
}

std::string File::get_string(const std::string& key, const std::string& fallback) const {
  const Value* v = find(key);
  return v ? with_key(path_, key, [&] { return v->as_string(); }) : fallback;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) {
    throw std::runtime_error(path_ + ": no tensor named " + name + " (the file has " +
                             std::to_string(tensors_.size()) + " tensors)");
  }
  return *t;
}

// ---------------------------------------------------------------- Writer

namespace {

void check_value(const Value& v, const std::string& where, int depth) {
  auto bad = [&](const std::string& what) {
    throw std::runtime_error("metadata " + where + ": " + what);
  };
  const auto index = v.data.index();  // uint64, int64, double, bool, string, Array
  if (is_unsigned(v.type)) {
    if (index != 0) bad(std::string(value_type_name(v.type)) + " value does not hold an unsigned integer");
    const uint64_t max = fixed_size(v.type) == 8 ? std::numeric_limits<uint64_t>::max()
                                                 : (uint64_t{1} << (8 * fixed_size(v.type))) - 1;
    if (std::get<uint64_t>(v.data) > max) bad("value out of range for " + std::string(value_type_name(v.type)));
  } else if (is_signed(v.type)) {
    if (index != 1) bad(std::string(value_type_name(v.type)) + " value does not hold a signed integer");
    if (fixed_size(v.type) < 8) {
      const int64_t lim = int64_t{1} << (8 * fixed_size(v.type) - 1);
      const int64_t x = std::get<int64_t>(v.data);
      if (x < -lim || x >= lim) bad("value out of range for " + std::string(value_type_name(v.type)));
    }
  } else if (is_float(v.type)) {
    if (index != 2) bad(std::string(value_type_name(v.type)) + " value does not hold a number");
  } else if (v.type == ValueType::BOOL) {
    if (index != 3) bad("BOOL value does not hold a bool");
  } else if (v.type == ValueType::STRING) {
    if (index != 4) bad("STRING value does not hold a string");
  } else if (v.type == ValueType::ARRAY) {
    if (index != 5) bad("ARRAY value does not hold an array");
    if (!is_known_value_type(static_cast<uint32_t>(v.array_type))) bad("unknown array element type");
    if (depth >= kMaxArrayDepth) bad("arrays nested too deep");
    const Array& items = std::get<Array>(v.data);
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string item_where = where + " element " + std::to_string(i);
      if (items[i].type != v.array_type) {
        throw std::runtime_error("metadata " + item_where + " is " + value_type_name(items[i].type) +
                                 " in an array of " + value_type_name(v.array_type));
      }
      check_value(items[i], item_where, depth + 1);
    }
  } else {
    bad("unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
  }
}

class ByteSink {
 public:
  std::vector<uint8_t> bytes;
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void put_value(const Value& v) {
    switch (v.type) {
      case ValueType::UINT8: put<uint8_t>(static_cast<uint8_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::INT8: put<int8_t>(static_cast<int8_t>(std::get<int64_t>(v.data))); break;
      case ValueType::UINT16: put<uint16_t>(static_cast<uint16_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::INT16: put<int16_t>(static_cast<int16_t>(std::get<int64_t>(v.data))); break;
      case ValueType::UINT32: put<uint32_t>(static_cast<uint32_t>(std::get<uint64_t>(v.data))); break;
      case ValueType::INT32: put<int32_t>(static_cast<int32_t>(std::get<int64_t>(v.data))); break;
      case ValueType::UINT64: put<uint64_t>(std::get<uint64_t>(v.data)); break;
      case ValueType::INT64: put<int64_t>(std::get<int64_t>(v.data)); break;
      case ValueType::FLOAT32: put<float>(static_cast<float>(std::get<double>(v.data))); break;
      case ValueType::FLOAT64: put<double>(std::get<double>(v.data)); break;
      case ValueType::BOOL: put<uint8_t>(std::get<bool>(v.data) ? 1 : 0); break;
      case ValueType::STRING: put_string(std::get<std::string>(v.data)); break;
      case ValueType::ARRAY: {
        const Array& items = std::get<Array>(v.data);
        put<uint32_t>(static_cast<uint32_t>(v.array_type));
        put<uint64_t>(items.size());
        for (const Value& item : items) put_value(item);
        break;
      }
    }
  }
};

}  // namespace

Writer::Writer(uint32_t alignment) : alignment_(alignment) {
  if (alignment == 0 || alignment > kMaxAlignment || (alignment & (alignment - 1)) != 0) {
    throw std::runtime_error("GGUF alignment " + std::to_string(alignment) +
                             " is not a power of two up to " + std::to_string(kMaxAlignment));
  }
}

void Writer::set(const std::string& key, Value value) {
  check_value(value, key, 0);
  if (key == "general.alignment") {
    if (value.type != ValueType::UINT32 || std::get<uint64_t>(value.data) != alignment_) {
      throw std::runtime_error("general.alignment must be the UINT32 " +
                               std::to_string(alignment_) +
                               " given to the Writer; pass the alignment to its constructor");
    }
  }
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void Writer::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne,
                        const void* bytes, size_t nbytes) {
  const std::string where = "tensor " + name;
  // ggml's GGML_MAX_NAME is 64 including the terminating NUL.
  if (name.empty() || name.size() > 63) {
    throw std::runtime_error(where + ": name must be 1..63 bytes for ggml to read it");
  }
  for (const auto& t : tensors_) {
    if (t.name == name) throw std::runtime_error(where + ": added twice");
  }
  if (!is_known(type)) {
    throw std::runtime_error(where + ": unknown tensor type " + type_name(type));
  }
  if (ne.empty() || ne.size() > kMaxDims) {
    throw std::runtime_error(where + ": has " + std::to_string(ne.size()) +
                             " dimensions, expected 1 to 4");
  }
  uint64_t rows = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 0) throw std::runtime_error(where + ": negative dimension");
    if (d > 0) {
      const auto r = mul_u64(rows, static_cast<uint64_t>(ne[d]));
      if (!r) throw std::runtime_error(where + ": size overflows 64 bits");
      rows = *r;
    }
  }
  const auto expected = mul_u64(row_bytes(type, ne[0]), rows);
  if (!expected) throw std::runtime_error(where + ": size overflows 64 bits");
  if (*expected != nbytes) {
    throw std::runtime_error(where + ": " + std::to_string(nbytes) + " bytes given, " +
                             type_name(type) + " of this shape needs " +
                             std::to_string(*expected));
  }
  const auto* p = static_cast<const uint8_t*>(bytes);
  tensors_.push_back({name, type, std::move(ne), std::vector<uint8_t>(p, p + nbytes)});
}

void Writer::add_f32(const std::string& name, std::vector<int64_t> ne, const float* values) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  add_tensor(name, TensorType::F32, std::move(ne), values,
             static_cast<size_t>(n < 0 ? 0 : n) * sizeof(float));
}

std::vector<uint8_t> Writer::header() const {
  ByteSink header;
  header.put<uint32_t>(kMagic);
  header.put<uint32_t>(3);
  header.put<uint64_t>(tensors_.size());
  bool has_alignment = false;
  for (const auto& kv : metadata_) has_alignment |= kv.first == "general.alignment";
  const bool add_alignment = !has_alignment && alignment_ != kDefaultAlignment;
  header.put<uint64_t>(metadata_.size() + (add_alignment ? 1 : 0));
  for (const auto& [key, value] : metadata_) {
    header.put_string(key);
    header.put<uint32_t>(static_cast<uint32_t>(value.type));
    header.put_value(value);
  }
  if (add_alignment) {
    header.put_string("general.alignment");
    header.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32));
    header.put<uint32_t>(alignment_);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    header.put_string(t.name);
    header.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) header.put<int64_t>(d);
    header.put<uint32_t>(static_cast<uint32_t>(t.type));
    header.put<uint64_t>(offset);
    offset = align_up(offset + t.bytes.size(), alignment_);
  }
  header.bytes.resize(align_up(header.bytes.size(), alignment_), 0);
  return std::move(header.bytes);
}

void Writer::write(const std::string& path) const {
  const std::vector<uint8_t> head = header();
  AtomicFile out(path);
  out.write(head.data(), head.size());
  const std::vector<uint8_t> zeros(alignment_, 0);
  for (const auto& t : tensors_) {
    out.write(t.bytes.data(), t.bytes.size());
    out.write(zeros.data(), align_up(t.bytes.size(), alignment_) - t.bytes.size());
  }
  out.commit();
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> bytes = header();
  size_t total = bytes.size();
  for (const auto& t : tensors_) total += align_up(t.bytes.size(), alignment_);
  bytes.reserve(total);
  for (const auto& t : tensors_) {
    bytes.insert(bytes.end(), t.bytes.begin(), t.bytes.end());
    bytes.resize(align_up(bytes.size(), alignment_), 0);
  }
  return bytes;
}

}  // namespace cleave::gguf
