#include "model/tensor_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cleave {
namespace {

// Mapped buffers by address, with their mapping length, and a cache of freed
// mappings. A training step allocates the same sizes step after step, so a
// freed mapping of about the same length is handed out again instead of
// being unmapped and then faulted in afresh (which costs the kernel a zeroed
// page per page touched, and the unmap a TLB flush on every core). Mapped
// bytes, in use and cached, stay within the most ever in use at once plus
// `cache_limit` (see evict_over_budget).
// A mapping is page aligned; a heap buffer rarely is, so only page-aligned
// pointers are looked up.
using Mappings = std::vector<std::pair<void*, size_t>>;  // (base, length)

void unmap_all(const Mappings& mappings) {
  for (const auto& [base, length] : mappings) munmap(base, length);
}

class MappingTable {
 public:
  // A cached mapping of at least `length` bytes and at most a quarter more
  // (the smallest such, the most recently freed of that length), or nullptr.
  void* reuse(size_t length) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_length_.lower_bound(length);
    if (it == by_length_.end() || it->first > length + length / 4) return nullptr;
    it = std::prev(by_length_.upper_bound(it->first));  // of that length, the last freed
    const auto [mapped, entry] = *it;
    const auto [stamp, base] = entry;
    by_age_.erase(stamp);
    by_length_.erase(it);
    cached_bytes_ -= mapped;
    in_use_bytes_ += mapped;
    lengths_[base] = mapped;
    return base;
  }
  // Records a fresh mapping; unmaps cached ones if the total went over budget.
  void add(void* base, size_t length, size_t cache_limit) {
    Mappings unmap;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      lengths_[base] = length;
      in_use_bytes_ += length;
      high_water_ = std::max(high_water_, in_use_bytes_);
      evict_over_budget(cache_limit, unmap);
    }
    unmap_all(unmap);
  }
  // Takes back the mapping at `base` into the cache, then unmaps the least
  // recently freed ones while the total is over budget. False when `base`
  // is not a mapping of ours.
  bool release(void* base, size_t cache_limit) {
    Mappings unmap;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = lengths_.find(base);
      if (it == lengths_.end()) return false;
      const size_t length = it->second;
      lengths_.erase(it);
      in_use_bytes_ -= length;
      const uint64_t stamp = next_stamp_++;
      by_age_.emplace(stamp, by_length_.emplace(length, std::make_pair(stamp, base)));
      cached_bytes_ += length;
      evict_over_budget(cache_limit, unmap);
    }
    unmap_all(unmap);
    return true;
  }
  size_t mapped_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_use_bytes_ + cached_bytes_;
  }
  size_t trim() {
    Mappings unmap;
    size_t released = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [length, entry] : by_length_) unmap.emplace_back(entry.second, length);
      released = cached_bytes_;
      by_age_.clear();
      by_length_.clear();
      cached_bytes_ = 0;
      high_water_ = in_use_bytes_;
    }
    unmap_all(unmap);
    return released;
  }

 private:
  // Free mappings by length: length -> (stamp, base); stamps count releases.
  using ByLength = std::multimap<size_t, std::pair<uint64_t, void*>>;

  // The budget: what was ever in use at once (the high-water mark) plus
  // `cache_limit`. Peak resident memory then stays within the peak of what
  // tensors needed plus `cache_limit`, as with a fixed cache, while between
  // peaks (the backward pass frees what the forward pass kept) the freed
  // mappings stay for reuse instead of being unmapped and faulted in again.
  void evict_over_budget(size_t cache_limit, Mappings& unmap) {
    while (cached_bytes_ > 0 && in_use_bytes_ + cached_bytes_ > high_water_ + cache_limit) {
      const auto oldest = by_age_.begin()->second;  // the least recently freed
      unmap.emplace_back(oldest->second.second, oldest->first);
      cached_bytes_ -= oldest->first;
      by_age_.erase(by_age_.begin());
      by_length_.erase(oldest);
    }
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> lengths_;            // in use
  ByLength by_length_;                                   // free, by length
  std::map<uint64_t, ByLength::iterator> by_age_;        // free, by stamp (release order)
  uint64_t next_stamp_ = 0;
  size_t in_use_bytes_ = 0;
  size_t cached_bytes_ = 0;
  // The most bytes in use when a fresh mapping was added (reuse only moves
  // bytes from cached to in use, within the budget).
  size_t high_water_ = 0;
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

constexpr size_t kHugePage = size_t{2} << 20;

// A fresh mapping of `length` (a multiple of the page size) bytes, or nullptr.
// From 2 MiB on it starts on a 2 MiB boundary and asks for transparent huge
// pages, so the kernel faults it in 2 MiB at a time instead of 4 KiB (where
// THP is "madvise" or "always"; elsewhere the advice is ignored). Faulting
// in fresh buffers was the allocator's main cost (BENCHMARKS.md).
void* map_buffer(size_t length) {
  if (length < kHugePage) {
    void* data = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return data == MAP_FAILED ? nullptr : data;
  }
  const size_t padded = length + kHugePage;
  void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > begin) munmap(raw, aligned - begin);
  const size_t tail = begin + padded - (aligned + length);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + length), tail);
  void* data = reinterpret_cast<void*>(aligned);
  madvise(data, length, MADV_HUGEPAGE);
  return data;
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
    void* data = map_buffer(length);
    TORCH_CHECK(data != nullptr, "out of memory: cannot map ", bytes, " bytes for a tensor (",
                std::strerror(errno), ")");
    mappings().add(data, length, cache_limit.load(std::memory_order_relaxed));
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

size_t trim_tensor_cache() { return mappings().trim(); }

}  // namespace cleave
