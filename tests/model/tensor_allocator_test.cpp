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

TEST(TensorAllocator, LargeTensorsGetTheirOwnMappingKeptForReuseUntilTrimmed) {
  install_tensor_allocator({/*mapped_from_bytes=*/kMiB, /*cache_limit_bytes=*/0});
  trim_tensor_cache();
  const size_t before = tensor_allocator_mapped_bytes();
  const size_t rss_before = resident_bytes();
  void* first = nullptr;
  {
    at::Tensor big = at::ones({int64_t{64} << 20 >> 2}, at::kFloat);  // 64 MiB, every page touched
    first = big.data_ptr();
    EXPECT_TRUE(page_aligned(first));
    EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 64 * kMiB);
    EXPECT_GT(resident_bytes(), rss_before + 60 * kMiB);
    EXPECT_FLOAT_EQ(big.sum().item<float>(), static_cast<float>(16 * kMiB));
  }
  // Freed, it stays mapped (within the high-water mark) for the next tensor of its size...
  EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 64 * kMiB);
  {
    at::Tensor again = at::zeros({int64_t{64} << 20 >> 2}, at::kFloat);
    EXPECT_EQ(again.data_ptr(), first);
    EXPECT_EQ(again.abs().max().item<float>(), 0.0f);
  }
  // ...until trimmed: then the mapping is gone, and so is its resident memory.
  EXPECT_GE(trim_tensor_cache(), 64 * kMiB);  // with the temporary of abs() above
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

TEST(TensorAllocator, ACachedMappingServesASlightlySmallerTensorButNotAMuchSmallerOne) {
  install_tensor_allocator({kMiB, 16 * kMiB});
  trim_tensor_cache();
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
  trim_tensor_cache();
}

TEST(TensorAllocator, MappingsStayWithinThePeakInUsePlusTheLimitLeastRecentlyFreedGoFirst) {
  install_tensor_allocator({kMiB, 4 * kMiB});
  trim_tensor_cache();
  const size_t before = tensor_allocator_mapped_bytes();
  const int64_t eight_mib = int64_t{8} << 20 >> 2;
  void* newer = nullptr;
  {
    at::Tensor a = at::empty({eight_mib}, at::kFloat), b = at::empty({eight_mib}, at::kFloat);
    newer = b.data_ptr();
    a.reset();  // freed first
  }
  // the peak was 16 MiB in use: both stay mapped
  EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 16 * kMiB);
  // 2 MiB more would make 18 MiB, over 16 + 4? No: 18 <= 20, both stay.
  at::Tensor c = at::empty({int64_t{2} << 20 >> 2}, at::kFloat);
  EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 18 * kMiB);
  // 4 MiB more (fresh: no cached mapping fits) would make 22 MiB: the
  // least recently freed, a, is unmapped.
  at::Tensor d = at::empty({int64_t{4} << 20 >> 2}, at::kFloat);
  EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 14 * kMiB);
  at::Tensor e = at::empty({eight_mib}, at::kFloat);
  EXPECT_EQ(e.data_ptr(), newer);  // b was kept
  EXPECT_EQ(tensor_allocator_mapped_bytes() - before, 14 * kMiB);
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
