// Seeded normal samples for the wire codec tests.
#pragma once

#include <random>
#include <vector>

namespace cleave::test {

inline std::vector<float> normal_values(std::mt19937& rng, size_t count, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> values(count);
  for (auto& v : values) v = dist(rng);
  return values;
}

}  // namespace cleave::test
