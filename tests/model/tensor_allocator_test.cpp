#include "model/tensor_allocator.h"

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace cleave {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// VmRSS of this process in bytes.
size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

bool page_aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) == 0;
}

TEST(TensorAllocator, LargeTensorsGetTheirOwnMappingAndGiveItBack) {
  install_tensor_allocator({/*mapped_from_bytes=*/kMiB, /*cache_limit_bytes=*/0});
  const size_t before = tensor_allocator_mapped_bytes();
  const size_t rss_before = resident_bytes();
  {
    at::Tensor big = at::ones({int64_t{64} << 20 >> 2}, at::kFloat);  // 64 MiB, every page touched
    EXPECT_TRUE(page_aligned(big.data_ptr()));
    EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 64 * kMiB);
    EXPECT_GT(resident_bytes(), rss_before + 60 * kMiB);
    EXPECT_FLOAT_EQ(big.sum().item<float>(), static_cast<float>(16 * kMiB));
  }
  // Without a cache the mapping is gone, and so is its resident memory.
  EXPECT_EQ(tensor_allocator_mapped_bytes(), before);
  EXPECT_LT(resident_bytes(), rss_before + 8 * kMiB);
}

TEST(TensorAllocator, SmallTensorsStayOnTheHeap) {
  install_tensor_allocator({kMiB, 0});
  const size_t before = tensor_allocator_mapped_bytes();
  at::Tensor small = at::arange(1000, at::kFloat);  // 4000 bytes
  EXPECT_EQ(tensor_allocator_mapped_bytes(), before);
  EXPECT_FLOAT_EQ(small.sum().item<float>(), 499500.0f);
}

TEST(TensorAllocator, AFreedMappingIsReusedForTheSameLengthWithinTheCacheLimit) {
  install_tensor_allocator({kMiB, 8 * kMiB});
  void* first = nullptr;
  {
    at::Tensor a = at::empty({int64_t{4} << 20 >> 2}, at::kFloat);  // 4 MiB
    first = a.data_ptr();
  }
  {
    at::Tensor b = at::zeros({int64_t{4} << 20 >> 2}, at::kFloat);
    EXPECT_EQ(b.data_ptr(), first);  // the cached mapping, not a fresh one
    EXPECT_EQ(b.abs().max().item<float>(), 0.0f);
  }
  // Beyond the limit a freed mapping is unmapped, not kept.
  const size_t kept = tensor_allocator_mapped_bytes();
  { at::Tensor huge = at::empty({int64_t{16} << 20 >> 2}, at::kFloat); }
  EXPECT_EQ(tensor_allocator_mapped_bytes(), kept);
}

TEST(TensorAllocator, ACachedMappingServesASlightlySmallerTensorButNotAMuchSmallerOne) {
  install_tensor_allocator({kMiB, 16 * kMiB});
  void* first = nullptr;
  {
    at::Tensor a = at::empty({int64_t{4} << 20 >> 2}, at::kFloat);  // 4 MiB
    first = a.data_ptr();
    // from 2 MiB on a mapping starts on a huge-page boundary
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2 * kMiB), 0u);
  }
  {
    at::Tensor small = at::empty({int64_t{2} << 20 >> 2}, at::kFloat);  // half: a fresh mapping
    EXPECT_NE(small.data_ptr(), first);
    at::Tensor b = at::empty({(int64_t{4} << 20) / 4 - 4096}, at::kFloat);  // 4 MiB less 16 KiB
    EXPECT_EQ(b.data_ptr(), first);
  }
  install_tensor_allocator({kMiB, 0});  // empties the cache at the next release
}

TEST(TensorAllocator, OverTheLimitTheLeastRecentlyFreedMappingIsUnmapped) {
  install_tensor_allocator({kMiB, 8 * kMiB});
  const int64_t four_mib = int64_t{4} << 20 >> 2;
  void* newer = nullptr;
  void* newest = nullptr;
  {
    at::Tensor a = at::empty({four_mib}, at::kFloat), b = at::empty({four_mib}, at::kFloat),
               c = at::empty({four_mib}, at::kFloat);
    newer = b.data_ptr();
    newest = c.data_ptr();
    a.reset();  // freed first: evicted when c comes back
    b.reset();
  }
  const size_t cached = tensor_allocator_mapped_bytes();
  at::Tensor x = at::empty({four_mib}, at::kFloat), y = at::empty({four_mib}, at::kFloat);
  EXPECT_EQ(tensor_allocator_mapped_bytes(), cached);  // both from the cache
  for (void* p : {x.data_ptr(), y.data_ptr()}) {
    EXPECT_TRUE(p == newer || p == newest) << "a reuse of the evicted mapping";
  }
}

TEST(TensorAllocator, RawAllocateAndDeallocateWorkForBothKinds) {
  install_tensor_allocator({kMiB, 0});
  c10::Allocator* allocator = c10::GetCPUAllocator();
  for (size_t bytes : {size_t{100}, 3 * kMiB}) {
    void* p = allocator->raw_allocate(bytes);
    ASSERT_NE(p, nullptr);
    static_cast<char*>(p)[bytes - 1] = 1;
    allocator->raw_deallocate(p);
  }
}

}  // namespace
}  // namespace cleave
