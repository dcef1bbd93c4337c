#include "aggregator/client_sampling.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cleave::aggregator {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, bound) without modulo bias (rejection).
uint64_t below(uint64_t& state, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t draw = splitmix64(state);
  while (draw >= limit) draw = splitmix64(state);
  return draw % bound;
}

// Sorts ids in place (the draws must not depend on registration order) and
// refuses duplicates, naming the caller.
void sort_unique(std::vector<std::string>& ids, const char* caller) {
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    throw std::invalid_argument(std::string(caller) + ": client ids must be unique");
  }
}

}  // namespace

const std::vector<std::pair<std::string, ClientSampling>>& client_sampling_names() {
  static const std::vector<std::pair<std::string, ClientSampling>> names = {{"random", ClientSampling::random},
                                                                           {"passes", ClientSampling::passes}};
  return names;
}

std::vector<std::string> sample_clients(std::vector<std::string> registered, int64_t count,
                                        uint64_t seed, uint32_t round) {
  sort_unique(registered, "sample_clients");
  const int64_t n = static_cast<int64_t>(registered.size());
  if (count < 0 || count > n) {
    throw std::invalid_argument("cannot sample " + std::to_string(count) + " clients from " +
                                std::to_string(n) + " registered");
  }
  uint64_t state = seed ^ (0xA0761D6478BD642Full * (static_cast<uint64_t>(round) + 1));
  // Partial Fisher-Yates: the first `count` slots are the sample.
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(below(state, static_cast<uint64_t>(n - i)));
    std::swap(registered[i], registered[j]);
  }
  registered.resize(static_cast<size_t>(count));
  std::sort(registered.begin(), registered.end());
  return registered;
}

std::vector<std::string> pass_sample(std::vector<std::string> registered, int64_t count, uint64_t seed,
                                     uint32_t round) {
  sort_unique(registered, "pass_sample");
  const int64_t n = static_cast<int64_t>(registered.size());
  if (count < 1 || count > n) {
    throw std::invalid_argument("cannot deal " + std::to_string(count) + " clients per round from " +
                                std::to_string(n) + " registered (1 to " + std::to_string(n) + ")");
  }
  const int64_t per_pass = (n + count - 1) / count;
  const uint64_t pass = round / static_cast<uint64_t>(per_pass);
  const int64_t slot = static_cast<int64_t>(round % static_cast<uint64_t>(per_pass));
  // A stream apart from the other two (another constant), one per pass: a full Fisher-Yates order.
  uint64_t state = seed ^ (0xC2B2AE3D27D4EB4Full * (pass + 1));
  for (int64_t i = 0; i + 1 < n; ++i) {
    const int64_t j = i + static_cast<int64_t>(below(state, static_cast<uint64_t>(n - i)));
    std::swap(registered[i], registered[j]);
  }
  const int64_t begin = slot * count;
  std::vector<std::string> dealt(registered.begin() + begin, registered.begin() + std::min(n, begin + count));
  std::sort(dealt.begin(), dealt.end());
  return dealt;
}

std::vector<std::string> poisson_sample(std::vector<std::string> registered, double rate, uint64_t seed,
                                        uint32_t round) {
  if (!(rate >= 0 && rate <= 1)) throw std::invalid_argument("poisson_sample: the rate must be in [0, 1]");
  sort_unique(registered, "poisson_sample");
  // A stream apart from sample_clients' (another constant), one draw per id in id order.
  uint64_t state = seed ^ (0xE7037ED1A0B428DBull * (static_cast<uint64_t>(round) + 1));
  std::vector<std::string> sampled;
  for (std::string& id : registered) {
    const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;   // uniform in [0, 1)
    if (u < rate) sampled.push_back(std::move(id));
  }
  return sampled;
}

int64_t clients_to_sample(int64_t registered, int64_t count, double fraction, int64_t min_clients) {
  // The epsilon keeps 0.1 * 30 (3.0000000000000004 in binary) at 3.
  int64_t wanted =
      count > 0 ? count : static_cast<int64_t>(std::ceil(fraction * static_cast<double>(registered) - 1e-9));
  wanted = std::max(wanted, min_clients);
  return std::min(wanted, registered);
}

}  // namespace cleave::aggregator
