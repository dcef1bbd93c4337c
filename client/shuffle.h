// Seeded randomness whose results are identical on every standard library.
// std::mt19937_64's output is fixed by the C++ standard, but std::shuffle and
// the std:: distributions are not, so shuffles, uniform integers and the
// gamma draws behind Dirichlet partitions are written out here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace cleave::data {

using Rng = std::mt19937_64;

// A generator for one independent stream of a seed (an epoch, a label):
// nearby seeds and streams give unrelated sequences.
Rng seeded_rng(uint64_t seed, uint64_t stream = 0);

// Uniform integer in [0, n), without modulo bias. n must be > 0.
uint64_t uniform_below(Rng& rng, uint64_t n);
// Uniform double in the open interval (0, 1).
double uniform_open(Rng& rng);
// Standard normal (Box-Muller).
double standard_normal(Rng& rng);
// log of a Gamma(shape, 1) draw (Marsaglia-Tsang). The log keeps tiny shapes
// (Dirichlet alpha 0.01) from underflowing to zero. shape must be > 0.
double log_gamma_draw(Rng& rng, double shape);

// Fisher-Yates shuffle in place.
template <typename T>
void shuffle_in_place(std::vector<T>& items, Rng& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, i));
    std::swap(items[i - 1], items[j]);
  }
}

// 0..n-1 in a random order.
std::vector<size_t> random_permutation(size_t n, Rng& rng);

}  // namespace cleave::data
