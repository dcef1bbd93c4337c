// What the CPU matmul tests share: seeded random tensors, and a scope that
// sets the process-wide frozen-matmul mode (model/cpu_matmul.h) for one test
// and restores float32, the default the other tests rely on, after it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "model/cpu_matmul.h"

namespace cleave::test {

inline at::Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat);
}

class CpuMatmulScope {
 public:
  explicit CpuMatmulScope(CpuMatmul matmul) { set_cpu_matmul(matmul); }
  ~CpuMatmulScope() { set_cpu_matmul(CpuMatmul::float32); }
  CpuMatmulScope(const CpuMatmulScope&) = delete;
  CpuMatmulScope& operator=(const CpuMatmulScope&) = delete;
};

}  // namespace cleave::test
