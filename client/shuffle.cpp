#include "client/shuffle.h"

#include <cmath>
#include <numeric>
#include <stdexcept>

namespace cleave::data {

namespace {

// SplitMix64 finaliser: spreads nearby seeds over the whole 64-bit space.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

Rng seeded_rng(uint64_t seed, uint64_t stream) { return Rng(mix(seed ^ mix(stream))); }

uint64_t uniform_below(Rng& rng, uint64_t n) {
  if (n == 0) throw std::invalid_argument("uniform_below: n must be positive");
  // Reject the lowest 2^64 mod n outputs so every residue is equally likely.
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

double uniform_open(Rng& rng) {
  // 53 random bits, shifted half a step away from 0.
  return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

double standard_normal(Rng& rng) {
  const double u1 = uniform_open(rng);
  const double u2 = uniform_open(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

double log_gamma_draw(Rng& rng, double shape) {
  if (!(shape > 0.0)) throw std::invalid_argument("gamma shape must be positive");
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    return log_gamma_draw(rng, shape + 1.0) + std::log(uniform_open(rng)) / shape;
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = standard_normal(rng);
    const double t = 1.0 + c * x;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    const double u = uniform_open(rng);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return std::log(d * v);
  }
}

std::vector<size_t> random_permutation(size_t n, Rng& rng) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  shuffle_in_place(order, rng);
  return order;
}

}  // namespace cleave::data
