#include "client/partition.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include "client/shuffle.h"

namespace cleave::data {

namespace {

void sort_each(ClientIndices& clients) {
  for (auto& indices : clients) std::sort(indices.begin(), indices.end());
}

void require_clients(size_t n_clients) {
  if (n_clients == 0) throw std::invalid_argument("the number of clients must be positive");
}

// Cuts `order` into consecutive parts of the given sizes.
ClientIndices cut(const std::vector<size_t>& order, const std::vector<size_t>& sizes) {
  ClientIndices clients(sizes.size());
  size_t start = 0;
  for (size_t c = 0; c < sizes.size(); ++c) {
    clients[c].assign(order.begin() + start, order.begin() + start + sizes[c]);
    start += sizes[c];
  }
  sort_each(clients);
  return clients;
}

// Gives every empty client one example taken from the currently largest
// client (when that one can spare it).
void top_up_empty(ClientIndices& clients) {
  for (auto& client : clients) {
    if (!client.empty()) continue;
    auto largest =
        std::max_element(clients.begin(), clients.end(),
                         [](const auto& a, const auto& b) { return a.size() < b.size(); });
    if (largest->size() < 2) return;
    client.push_back(largest->back());
    largest->pop_back();
  }
}

// Label index per example (labels numbered by first appearance).
std::vector<size_t> label_ids(const std::vector<std::string>& labels, size_t* n_labels) {
  std::unordered_map<std::string, size_t> ids;
  std::vector<size_t> result(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    result[i] = ids.emplace(labels[i], ids.size()).first->second;
  }
  *n_labels = ids.size();
  return result;
}

// One Dirichlet label-skew draw; may leave clients empty.
ClientIndices dirichlet_draw(const std::vector<std::vector<size_t>>& by_label, size_t n_clients,
                             double alpha, Rng& rng) {
  ClientIndices clients(n_clients);
  std::vector<double> log_draws(n_clients), proportions(n_clients);
  for (const auto& label_indices : by_label) {
    std::vector<size_t> indices = label_indices;
    shuffle_in_place(indices, rng);
    // Normalise in log space: for alpha << 1 the gamma draws underflow.
    for (auto& g : log_draws) g = log_gamma_draw(rng, alpha);
    const double top = *std::max_element(log_draws.begin(), log_draws.end());
    double sum = 0.0;
    for (size_t c = 0; c < n_clients; ++c) sum += proportions[c] = std::exp(log_draws[c] - top);
    double cumulative = 0.0;
    size_t start = 0;
    for (size_t c = 0; c < n_clients; ++c) {
      cumulative += proportions[c] / sum;
      const size_t end = c + 1 == n_clients
          ? indices.size()
          : std::min(indices.size(), static_cast<size_t>(cumulative * indices.size()));
      if (end > start)
        clients[c].insert(clients[c].end(), indices.begin() + start, indices.begin() + end);
      start = std::max(start, end);
    }
  }
  return clients;
}

}  // namespace

ClientIndices partition_iid(size_t n_examples, size_t n_clients, uint64_t seed) {
  require_clients(n_clients);
  Rng rng = seeded_rng(seed);
  std::vector<size_t> sizes(n_clients, n_examples / n_clients);
  for (size_t c = 0; c < n_examples % n_clients; ++c) ++sizes[c];
  return cut(random_permutation(n_examples, rng), sizes);
}

ClientIndices partition_dirichlet(const std::vector<std::string>& labels, size_t n_clients,
                                  double alpha, uint64_t seed) {
  require_clients(n_clients);
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    throw std::invalid_argument("Dirichlet alpha must be positive and finite, got " +
                                std::to_string(alpha));
  }
  size_t n_labels = 0;
  const std::vector<size_t> ids = label_ids(labels, &n_labels);
  std::vector<std::vector<size_t>> by_label(n_labels);
  for (size_t i = 0; i < ids.size(); ++i) by_label[ids[i]].push_back(i);

  Rng rng = seeded_rng(seed);
  constexpr int kRedraws = 10;
  ClientIndices clients;
  for (int attempt = 0; attempt <= kRedraws; ++attempt) {
    clients = dirichlet_draw(by_label, n_clients, alpha, rng);
    const bool any_empty = std::any_of(clients.begin(), clients.end(),
                                       [](const auto& client) { return client.empty(); });
    if (!any_empty || labels.size() < n_clients) break;
  }
  top_up_empty(clients);
  sort_each(clients);
  return clients;
}

std::vector<std::string> distinct_groups(const std::vector<std::string>& groups) {
  std::vector<std::string> distinct;
  std::unordered_map<std::string, size_t> seen;
  for (const auto& group : groups) {
    if (seen.emplace(group, distinct.size()).second) distinct.push_back(group);
  }
  return distinct;
}

ClientIndices partition_natural(const std::vector<std::string>& groups) {
  size_t n_groups = 0;
  const std::vector<size_t> ids = label_ids(groups, &n_groups);
  ClientIndices clients(n_groups);
  for (size_t i = 0; i < ids.size(); ++i) clients[ids[i]].push_back(i);
  return clients;
}

std::vector<double> power_law_shares(size_t n_clients, double exponent) {
  require_clients(n_clients);
  if (!std::isfinite(exponent) || exponent < 0.0) {
    throw std::invalid_argument("power-law exponent must be finite and >= 0, got " +
                                std::to_string(exponent));
  }
  std::vector<double> shares(n_clients);
  double sum = 0.0;
  for (size_t c = 0; c < n_clients; ++c) sum += shares[c] = std::pow(double(c + 1), -exponent);
  for (auto& share : shares) share /= sum;
  return shares;
}

ClientIndices partition_size_skew(size_t n_examples, const std::vector<double>& shares,
                                  uint64_t seed) {
  require_clients(shares.size());
  double sum = 0.0;
  for (const double share : shares) {
    if (!std::isfinite(share) || share < 0.0) {
      throw std::invalid_argument("client shares must be finite and >= 0");
    }
    sum += share;
  }
  if (!(sum > 0.0)) throw std::invalid_argument("client shares must not all be zero");

  // Largest remainder: floors first, then one more for the biggest fractions.
  const size_t n_clients = shares.size();
  std::vector<size_t> sizes(n_clients);
  std::vector<double> remainders(n_clients);
  size_t assigned = 0;
  for (size_t c = 0; c < n_clients; ++c) {
    const double exact = shares[c] / sum * static_cast<double>(n_examples);
    sizes[c] = std::min(n_examples - assigned, static_cast<size_t>(std::floor(exact)));
    remainders[c] = exact - std::floor(exact);
    assigned += sizes[c];
  }
  std::vector<size_t> by_remainder(n_clients);
  std::iota(by_remainder.begin(), by_remainder.end(), size_t{0});
  std::stable_sort(by_remainder.begin(), by_remainder.end(),
                   [&](size_t a, size_t b) { return remainders[a] > remainders[b]; });
  for (size_t k = 0; assigned < n_examples; k = (k + 1) % n_clients, ++assigned) {
    ++sizes[by_remainder[k]];
  }
  // At least one example each when there are enough: take from the largest.
  if (n_examples >= n_clients) {
    for (auto& size : sizes) {
      if (size > 0) continue;
      ++size;
      --*std::max_element(sizes.begin(), sizes.end());
    }
  }
  Rng rng = seeded_rng(seed);
  return cut(random_permutation(n_examples, rng), sizes);
}

double label_skew(const ClientIndices& clients, const std::vector<std::string>& labels) {
  size_t n_labels = 0;
  const std::vector<size_t> ids = label_ids(labels, &n_labels);
  std::vector<double> global(n_labels, 0.0);
  for (const size_t id : ids) global[id] += 1.0 / static_cast<double>(ids.size());
  double total = 0.0;
  size_t counted = 0;
  for (const auto& client : clients) {
    if (client.empty()) continue;
    std::vector<double> local(n_labels, 0.0);
    for (const size_t index : client)
      local[ids.at(index)] += 1.0 / static_cast<double>(client.size());
    double distance = 0.0;
    for (size_t k = 0; k < n_labels; ++k) distance += std::abs(local[k] - global[k]);
    total += 0.5 * distance;
    ++counted;
  }
  return counted ? total / static_cast<double>(counted) : 0.0;
}

PartitionKind parse_partition_kind(const std::string& name) {
  if (name == "iid") return PartitionKind::iid;
  if (name == "dirichlet") return PartitionKind::dirichlet;
  if (name == "natural") return PartitionKind::natural;
  if (name == "size_skew") return PartitionKind::size_skew;
  throw std::invalid_argument("unknown partition \"" + name +
                              "\": use iid, dirichlet, natural or size_skew");
}

const char* partition_kind_name(PartitionKind kind) {
  switch (kind) {
    case PartitionKind::iid: return "iid";
    case PartitionKind::dirichlet: return "dirichlet";
    case PartitionKind::natural: return "natural";
    case PartitionKind::size_skew: return "size_skew";
  }
  return "unknown";
}

void PartitionSpec::validate() const {
  if (kind != PartitionKind::natural && n_clients == 0) {
    throw std::invalid_argument(std::string("n_clients must be positive for the ") +
                                partition_kind_name(kind) + " partition");
  }
  if (kind == PartitionKind::dirichlet && (!(alpha > 0.0) || !std::isfinite(alpha))) {
    throw std::invalid_argument("alpha must be positive and finite, got " + std::to_string(alpha));
  }
  if (kind == PartitionKind::size_skew && !shares.empty() && shares.size() != n_clients) {
    throw std::invalid_argument("shares has " + std::to_string(shares.size()) +
                                " entries but n_clients is " + std::to_string(n_clients));
  }
}

ClientIndices partition(const PartitionSpec& spec, size_t n_examples,
                        const std::vector<std::string>& groups) {
  spec.validate();
  const bool needs_groups =
      spec.kind == PartitionKind::dirichlet || spec.kind == PartitionKind::natural;
  if (needs_groups && groups.size() != n_examples) {
    throw std::invalid_argument(std::string("the ") + partition_kind_name(spec.kind) +
                                " partition needs one label per example: got " +
                                std::to_string(groups.size()) + " for " +
                                std::to_string(n_examples) + " examples");
  }
  switch (spec.kind) {
    case PartitionKind::iid: return partition_iid(n_examples, spec.n_clients, spec.seed);
    case PartitionKind::dirichlet:
      return partition_dirichlet(groups, spec.n_clients, spec.alpha, spec.seed);
    case PartitionKind::natural: {
      ClientIndices clients = partition_natural(groups);
      if (spec.n_clients != 0 && spec.n_clients != clients.size()) {
        throw std::invalid_argument("the natural partition makes one client per group: " +
                                    std::to_string(clients.size()) + " groups, but n_clients is " +
                                    std::to_string(spec.n_clients));
      }
      return clients;
    }
    case PartitionKind::size_skew:
      return partition_size_skew(
          n_examples,
          spec.shares.empty() ? power_law_shares(spec.n_clients, spec.exponent) : spec.shares,
          spec.seed);
  }
  throw std::invalid_argument("unknown partition kind");
}

}  // namespace cleave::data
