#include "model/tensor_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

namespace cleave {
namespace {

// Mapped buffers by address, with their mapping length, and a small cache of
// freed mappings. A training step allocates the same sizes step after step,
// so a freed mapping of the same length is handed out again instead of being
// unmapped and then faulted in afresh (which costs the kernel a zeroed page
// per 4 KiB touched). The cache holds at most `cache_limit` bytes, so resident
// memory stays within that of what is in use.
// A mapping is page aligned; a heap buffer rarely is, so only page-aligned
// pointers are looked up.
class MappingTable {
 public:
  // A cached mapping of exactly `length` bytes, or nullptr.
  void* reuse(size_t length) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cached_.find(length);
    if (it == cached_.end()) return nullptr;
    void* base = it->second;
    cached_.erase(it);
    cached_bytes_ -= length;
    lengths_[base] = length;
    return base;
  }
  void add(void* base, size_t length) {
    std::lock_guard<std::mutex> lock(mutex_);
    lengths_[base] = length;
  }
  // Takes back the mapping at `base`: cached, or unmapped. False when `base`
  // is not a mapping of ours.
  bool release(void* base, size_t cache_limit) {
    size_t length = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = lengths_.find(base);
      if (it == lengths_.end()) return false;
      length = it->second;
      lengths_.erase(it);
      if (cached_bytes_ + length <= cache_limit) {
        cached_.emplace(length, base);
        cached_bytes_ += length;
        return true;
      }
    }
    munmap(base, length);
    return true;
  }
  size_t mapped_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t total = cached_bytes_;
    for (const auto& entry : lengths_) total += entry.second;
    return total;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<void*, size_t> lengths_;   // in use
  std::multimap<size_t, void*> cached_;         // free, by length
  size_t cached_bytes_ = 0;
};

MappingTable& mappings() {
  static auto* table = new MappingTable();  // never destroyed: tensors may die after main
  return *table;
}

// Set by install_tensor_allocator; until then the defaults of the options.
std::atomic<size_t> mapped_from{TensorAllocatorOptions{}.mapped_from_bytes};
std::atomic<size_t> cache_limit{TensorAllocatorOptions{}.cache_limit_bytes};

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

void release(void* data) {
  if (data == nullptr) return;
  if (reinterpret_cast<uintptr_t>(data) % page_size() == 0 &&
      mappings().release(data, cache_limit.load(std::memory_order_relaxed))) {
    return;
  }
  c10::free_cpu(data);
}

class MappingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (bytes < mapped_from.load(std::memory_order_relaxed)) {
      void* data = c10::alloc_cpu(bytes);
      return {data, data, &release, cpu};
    }
    const size_t length = (bytes + page_size() - 1) / page_size() * page_size();
    if (void* reused = mappings().reuse(length)) return {reused, reused, &release, cpu};
    void* data = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(data != MAP_FAILED, "out of memory: cannot map ", bytes, " bytes for a tensor (",
                std::strerror(errno), ")");
    mappings().add(data, length);
    return {data, data, &release, cpu};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
};

}  // namespace

void install_tensor_allocator(const TensorAllocatorOptions& options) {
  static MappingCpuAllocator allocator;
  mapped_from = options.mapped_from_bytes;
  cache_limit = options.cache_limit_bytes;
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
}

size_t tensor_allocator_mapped_bytes() { return mappings().mapped_bytes(); }

}  // namespace cleave
