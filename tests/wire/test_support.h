// Helpers shared by the wire codec and frame tests.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "wire/error.h"

namespace cleave::test {

// Seeded normal samples.
inline std::vector<float> normal_values(std::mt19937& rng, size_t count, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> values(count);
  for (auto& v : values) v = dist(rng);
  return values;
}

// The message of the wire::WireError `fn` throws, or "<no WireError>".
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const wire::WireError& e) {
    return e.what();
  }
  return "<no WireError>";
}

}  // namespace cleave::test
