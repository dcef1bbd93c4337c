// Splitting a data set over simulated federated clients: which example
// indices each client holds. Pure functions, deterministic given the seed.
// Every partition is disjoint and covers all examples; each client's indices
// are sorted ascending.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cleave::data {

// clients[c] = indices of the examples client c holds.
using ClientIndices = std::vector<std::vector<size_t>>;

// A seeded shuffle cut into near-equal parts (sizes differ by at most one).
ClientIndices partition_iid(size_t n_examples, size_t n_clients, uint64_t seed);

// Label skew: for each label, proportions over clients are drawn from a
// symmetric Dirichlet(alpha) and that label's examples (shuffled) are cut by
// them, as in Hsu et al. 2019. Small alpha: each client sees few labels;
// large alpha: close to IID. Every client gets at least one example when there
// are at least n_clients examples (empty draws are redrawn a few times, then
// topped up from the largest client).
ClientIndices partition_dirichlet(const std::vector<std::string>& labels, size_t n_clients,
                                  double alpha, uint64_t seed);

// One client per distinct group (a source file, a site), clients in the order
// the groups first appear.
ClientIndices partition_natural(const std::vector<std::string>& groups);
// The distinct groups in order of first appearance: client c of
// partition_natural holds group distinct_groups(groups)[c].
std::vector<std::string> distinct_groups(const std::vector<std::string>& groups);

// Quantity skew: client c gets a share of a seeded shuffle proportional to
// shares[c] (largest-remainder rounding, at least one example each when there
// are enough).
ClientIndices partition_size_skew(size_t n_examples, const std::vector<double>& shares,
                                  uint64_t seed);
// shares[c] = (c + 1)^-exponent, normalised: client 0 the largest.
std::vector<double> power_law_shares(size_t n_clients, double exponent);

// Mean over non-empty clients of the total variation distance between the
// client's label distribution and the whole data set's: 0 for identical
// mixtures, towards 1 when each client holds labels the others lack.
double label_skew(const ClientIndices& clients, const std::vector<std::string>& labels);

enum class PartitionKind { iid, dirichlet, natural, size_skew };
PartitionKind parse_partition_kind(const std::string& name);  // iid|dirichlet|natural|size_skew
const char* partition_kind_name(PartitionKind kind);

struct PartitionSpec {
  PartitionKind kind = PartitionKind::iid;
  size_t n_clients = 0;        // natural: 0 (one client per group) or that count
  double alpha = 0.5;          // dirichlet
  std::vector<double> shares;  // size_skew: explicit shares, else power law
  double exponent = 1.0;       // size_skew without shares
  uint64_t seed = 0;

  void validate() const;  // throws std::invalid_argument naming the field
};

// Dispatches on spec.kind. `groups` holds one label or source per example,
// needed by dirichlet and natural (n_examples entries), ignored otherwise.
ClientIndices partition(const PartitionSpec& spec, size_t n_examples,
                        const std::vector<std::string>& groups = {});

}  // namespace cleave::data
