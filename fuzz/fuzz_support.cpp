#include "fuzz/fuzz_support.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace cleave::fuzz {

std::vector<net::Bytes> split_at_magic(const uint8_t* data, size_t size, const char magic[4]) {
  std::vector<net::Bytes> chunks;
  const uint8_t* end = data + size;
  const uint8_t* start = data;
  const auto* pattern = reinterpret_cast<const uint8_t*>(magic);
  // The next occurrence strictly after `start`, so every chunk is non-empty.
  while (start < end) {
    const uint8_t* next = start + 1 < end ? std::search(start + 1, end, pattern, pattern + 4) : end;
    chunks.emplace_back(start, next);
    start = next;
  }
  return chunks;
}

namespace {
// Never destroyed: the atexit handler below must still find it.
std::vector<std::string>& directories_to_remove() {
  static auto* directories = new std::vector<std::string>();
  return *directories;
}
void remove_directories() {
  for (const std::string& dir : directories_to_remove()) std::filesystem::remove_all(dir);
}
}  // namespace

std::string temporary_directory(const std::string& prefix) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot create a temporary directory from " + pattern);
  }
  static std::once_flag registered;
  std::call_once(registered, [] { std::atexit(remove_directories); });
  directories_to_remove().push_back(pattern);
  return pattern;
}

}  // namespace cleave::fuzz
