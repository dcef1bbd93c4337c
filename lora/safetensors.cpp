#include "lora/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/json.h"

namespace cleave::safetensors {
namespace {

// Larger headers are refused before allocating (the reference reader's limit).
constexpr uint64_t kMaxHeaderBytes = 100u * 1024 * 1024;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string errno_text() { return std::strerror(errno); }

void require_little_endian_host() {
  const uint16_t probe = 1;
  uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  if (first != 1) {
    throw std::runtime_error("safetensors data is little-endian; this big-endian host is not supported");
  }
}

uint64_t checked_product(const std::vector<int64_t>& shape, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw std::runtime_error(where + ": negative dimension in shape");
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) {
      throw std::runtime_error(where + ": shape overflows");
    }
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> kSizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  auto it = kSizes.find(dtype);
  return it == kSizes.end() ? 0 : it->second;
}

void write(const std::string& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata) {
  require_little_endian_host();
  json::Value header = json::Value::object();
  uint64_t offset = 0;
  for (const TensorData& t : tensors) {
    const size_t element = dtype_size(t.dtype);
    if (element == 0) throw std::invalid_argument("safetensors: unknown dtype '" + t.dtype + "' for " + t.name);
    if (checked_product(t.shape, t.name) * element != t.bytes) {
      throw std::invalid_argument("safetensors: " + t.name + " has " + std::to_string(t.bytes) +
                                  " bytes, which does not match its shape and dtype");
    }
    if (t.name == "__metadata__" || header.contains(t.name)) {
      throw std::invalid_argument("safetensors: tensor name '" + t.name + "' is reserved or repeated");
    }
    json::Array shape;
    for (int64_t d : t.shape) shape.emplace_back(d);
    json::Value entry = json::Value::object();
    entry.set("dtype", t.dtype);
    entry.set("shape", json::Value(std::move(shape)));
    entry.set("data_offsets", json::Value(json::Array{json::Value(offset),
                                                      json::Value(offset + t.bytes)}));
    header.set(t.name, std::move(entry));
    offset += t.bytes;
  }
  json::Value meta = json::Value::object();
  for (const auto& [key, value] : metadata) meta.set(key, value);
  header.set("__metadata__", std::move(meta));

  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  AtomicFile out(path);
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
  for (const TensorData& t : tensors) out.write(t.data, t.bytes);
  out.commit();
}

File File::read(const std::string& path) {
  std::vector<uint8_t> bytes;
  FilePtr in(std::fopen(path.c_str(), "rb"));
  if (!in) throw std::runtime_error(path + ": cannot open: " + errno_text());
  if (std::fseek(in.get(), 0, SEEK_END) != 0) throw std::runtime_error(path + ": cannot seek: " + errno_text());
  const long size = std::ftell(in.get());
  if (size < 0) throw std::runtime_error(path + ": cannot tell size: " + errno_text());
  std::rewind(in.get());
  bytes.resize(static_cast<size_t>(size));
  if (size > 0 && std::fread(bytes.data(), 1, bytes.size(), in.get()) != bytes.size()) {
    throw std::runtime_error(path + ": read failed: " + errno_text());
  }
  return from_bytes(path, std::move(bytes));
}

File File::from_bytes(const std::string& name, std::vector<uint8_t> image) {
  require_little_endian_host();
  const std::string& path = name;
  File file;
  file.path_ = path;
  file.bytes_ = std::move(image);
  const std::vector<uint8_t>& bytes = file.bytes_;
  const std::string bad = path + ": not a valid safetensors file: ";
  if (bytes.size() < 8) {
    throw std::runtime_error(bad + "only " + std::to_string(bytes.size()) +
                             " bytes, too short for the 8-byte header length (truncated?)");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    throw std::runtime_error(bad + "header length " + std::to_string(header_len) +
                             " runs past the end of the " + std::to_string(bytes.size()) +
                             "-byte file (truncated or corrupt)");
  }
  json::Value header;
  try {
    header = json::parse(std::string_view(reinterpret_cast<const char*>(bytes.data() + 8), header_len));
  } catch (const json::ParseError& e) {
    throw std::runtime_error(bad + "header is not JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw std::runtime_error(bad + "header is not a JSON object");

  const uint8_t* data = bytes.data() + 8 + header_len;
  const uint64_t data_size = bytes.size() - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [begin, end) of every tensor
  for (const auto& [name, entry] : header.as_object()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw std::runtime_error(bad + "__metadata__ is not an object");
      for (const auto& [key, value] : entry.as_object()) {
        if (!value.is_string()) throw std::runtime_error(bad + "__metadata__." + key + " is not a string");
        file.metadata_[key] = value.as_string();
      }
      continue;
    }
    const std::string where = bad + "tensor " + name;
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (!entry.is_object() || !dtype || !dtype->is_string() || !shape || !shape->is_array() ||
        !offsets || !offsets->is_array() || offsets->size() != 2) {
      throw std::runtime_error(where + " needs \"dtype\" (string), \"shape\" (array) and "
                               "\"data_offsets\" ([begin, end])");
    }
    TensorView view;
    view.name = name;
    view.dtype = dtype->as_string();
    const size_t element = dtype_size(view.dtype);
    if (element == 0) throw std::runtime_error(where + " has unknown dtype '" + view.dtype + "'");
    for (const json::Value& d : shape->as_array()) {
      if (!d.is_integer() || d.as_int() < 0) throw std::runtime_error(where + " has a bad shape entry");
      view.shape.push_back(d.as_int());
    }
    const json::Value& b = (*offsets)[0];
    const json::Value& e = (*offsets)[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int() < 0 || e.as_int() < b.as_int()) {
      throw std::runtime_error(where + " has bad data_offsets");
    }
    const uint64_t begin = static_cast<uint64_t>(b.as_int()), end = static_cast<uint64_t>(e.as_int());
    if (end > data_size) {
      throw std::runtime_error(where + " has data_offsets [" + std::to_string(begin) + ", " +
                               std::to_string(end) + "] past the end of the " +
                               std::to_string(data_size) + "-byte data section (truncated?)");
    }
    const uint64_t n = checked_product(view.shape, where);
    if (n > std::numeric_limits<uint64_t>::max() / element || n * element != end - begin) {
      throw std::runtime_error(where + ": shape " + json::Value(shape->as_array()).dump() + " of " +
                               view.dtype + " needs " + std::to_string(n * element) +
                               " bytes but data_offsets span " + std::to_string(end - begin));
    }
    view.data = data + begin;
    view.bytes = static_cast<size_t>(end - begin);
    spans.emplace_back(begin, end);
    file.tensors_.push_back(std::move(view));
  }
  std::sort(spans.begin(), spans.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : spans) {
    if (begin != covered) {
      throw std::runtime_error(bad + "tensor data overlaps or leaves a gap at byte " +
                               std::to_string(std::min(begin, covered)) + " of the data section");
    }
    covered = end;
  }
  if (covered != data_size) {
    throw std::runtime_error(bad + std::to_string(data_size - covered) +
                             " bytes after the last tensor that no tensor claims");
  }
  return file;
}

}  // namespace cleave::safetensors
