#include "client/partition.h"

#include <gtest/gtest.h>

namespace cleave::data {
namespace {

// Every index 0..n-1 in exactly one client, each client sorted.
void expect_disjoint_cover(const ClientIndices& clients, size_t n) {
  std::vector<int> seen(n, 0);
  size_t total = 0;
  for (const auto& client : clients) {
    EXPECT_TRUE(std::is_sorted(client.begin(), client.end()));
    for (const size_t index : client) {
      ASSERT_LT(index, n);
      ++seen[index];
    }
    total += client.size();
  }
  EXPECT_EQ(total, n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "index " << i;
}

// 600 examples over 6 labels, 100 each, interleaved.
std::vector<std::string> six_labels() {
  std::vector<std::string> labels;
  for (int i = 0; i < 600; ++i) labels.push_back("label" + std::to_string(i % 6));
  return labels;
}

TEST(PartitionIid, NearEqualDisjointAndSeeded) {
  const ClientIndices clients = partition_iid(103, 10, 1);
  ASSERT_EQ(clients.size(), 10u);
  expect_disjoint_cover(clients, 103);
  for (size_t c = 0; c < 10; ++c) EXPECT_EQ(clients[c].size(), c < 3 ? 11u : 10u);
  EXPECT_EQ(clients, partition_iid(103, 10, 1));
  EXPECT_NE(clients, partition_iid(103, 10, 2));
  // Shuffled, not contiguous blocks.
  EXPECT_NE(clients[0].back() - clients[0].front(), clients[0].size() - 1);
  EXPECT_THROW(partition_iid(10, 0, 1), std::invalid_argument);
}

TEST(PartitionDirichlet, CoversAllAndIsSeeded) {
  const std::vector<std::string> labels = six_labels();
  const ClientIndices clients = partition_dirichlet(labels, 8, 0.5, 42);
  ASSERT_EQ(clients.size(), 8u);
  expect_disjoint_cover(clients, labels.size());
  for (const auto& client : clients) EXPECT_FALSE(client.empty());
  EXPECT_EQ(clients, partition_dirichlet(labels, 8, 0.5, 42));
  EXPECT_NE(clients, partition_dirichlet(labels, 8, 0.5, 43));
}

TEST(PartitionDirichlet, SmallAlphaIsMoreSkewedThanLargeAlpha) {
  const std::vector<std::string> labels = six_labels();
  const double iid = label_skew(partition_iid(labels.size(), 10, 1), labels);
  double skew_small = 0.0, skew_large = 0.0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    skew_small += label_skew(partition_dirichlet(labels, 10, 0.05, seed), labels) / 5;
    skew_large += label_skew(partition_dirichlet(labels, 10, 100.0, seed), labels) / 5;
  }
  EXPECT_GT(skew_small, 0.5);   // most clients hold one or two of six labels
  EXPECT_LT(skew_large, 0.15);  // close to the global mixture
  EXPECT_GT(skew_small, skew_large + 0.3);
  EXPECT_LT(iid, 0.2);  // sampling noise of 60 examples per client
}

TEST(PartitionDirichlet, TinyAlphaStillGivesEveryClientAnExample) {
  const std::vector<std::string> labels = six_labels();
  const ClientIndices clients = partition_dirichlet(labels, 50, 0.001, 9);
  expect_disjoint_cover(clients, labels.size());
  for (const auto& client : clients) EXPECT_FALSE(client.empty());
  // Fewer examples than clients: some stay empty, none invented.
  const ClientIndices few = partition_dirichlet({"a", "b", "a"}, 5, 1.0, 0);
  expect_disjoint_cover(few, 3);
  EXPECT_THROW(partition_dirichlet(labels, 4, 0.0, 0), std::invalid_argument);
}

TEST(PartitionNatural, OneClientPerGroupInFirstAppearanceOrder) {
  const std::vector<std::string> groups = {"cdc.jsonl", "nih.jsonl", "cdc.jsonl", "gard.jsonl",
                                           "nih.jsonl"};
  const ClientIndices clients = partition_natural(groups);
  EXPECT_EQ(clients, (ClientIndices{{0, 2}, {1, 4}, {3}}));
  EXPECT_EQ(distinct_groups(groups),
            (std::vector<std::string>{"cdc.jsonl", "nih.jsonl", "gard.jsonl"}));
  // Total variation from the global mixture (2/5, 2/5, 1/5): 0.6, 0.6, 0.8.
  EXPECT_NEAR(label_skew(clients, groups), 2.0 / 3, 1e-12);
}

TEST(PartitionSizeSkew, SizesFollowTheShares) {
  const ClientIndices clients = partition_size_skew(100, {5, 3, 2}, 4);
  expect_disjoint_cover(clients, 100);
  EXPECT_EQ(clients[0].size(), 50u);
  EXPECT_EQ(clients[1].size(), 30u);
  EXPECT_EQ(clients[2].size(), 20u);
  EXPECT_EQ(clients, partition_size_skew(100, {5, 3, 2}, 4));

  // Largest remainder: 10 * (1/3) each -> 4, 3, 3.
  const ClientIndices thirds = partition_size_skew(10, {1, 1, 1}, 0);
  EXPECT_EQ(thirds[0].size(), 4u);
  EXPECT_EQ(thirds[1].size() + thirds[2].size(), 6u);

  // A share too small for one example still gets one.
  const ClientIndices tiny = partition_size_skew(10, {1000, 1, 1}, 0);
  expect_disjoint_cover(tiny, 10);
  EXPECT_EQ(tiny[1].size(), 1u);
  EXPECT_EQ(tiny[2].size(), 1u);
  EXPECT_THROW(partition_size_skew(10, {0, 0}, 0), std::invalid_argument);
  EXPECT_THROW(partition_size_skew(10, {1, -1}, 0), std::invalid_argument);
}

TEST(PartitionSizeSkew, PowerLawShares) {
  const std::vector<double> shares = power_law_shares(4, 1.0);
  // 1, 1/2, 1/3, 1/4 normalised by 25/12.
  EXPECT_NEAR(shares[0], 12.0 / 25, 1e-12);
  EXPECT_NEAR(shares[3], 3.0 / 25, 1e-12);
  const ClientIndices clients = partition_size_skew(1000, shares, 1);
  expect_disjoint_cover(clients, 1000);
  for (size_t c = 1; c < clients.size(); ++c) EXPECT_GT(clients[c - 1].size(), clients[c].size());
  EXPECT_EQ(power_law_shares(3, 0.0), (std::vector<double>{1.0 / 3, 1.0 / 3, 1.0 / 3}));
}

TEST(Partition, SpecDispatchAndValidation) {
  const std::vector<std::string> labels = six_labels();
  PartitionSpec spec;
  spec.kind = parse_partition_kind("dirichlet");
  spec.n_clients = 5;
  spec.alpha = 0.3;
  spec.seed = 12;
  EXPECT_EQ(partition(spec, labels.size(), labels), partition_dirichlet(labels, 5, 0.3, 12));
  EXPECT_THROW(partition(spec, labels.size()), std::invalid_argument);  // labels needed

  spec.kind = PartitionKind::natural;
  spec.n_clients = 0;
  EXPECT_EQ(partition(spec, labels.size(), labels).size(), 6u);
  spec.n_clients = 4;
  EXPECT_THROW(partition(spec, labels.size(), labels), std::invalid_argument);

  spec.kind = PartitionKind::size_skew;
  spec.exponent = 1.0;
  EXPECT_EQ(partition(spec, 1000), partition_size_skew(1000, power_law_shares(4, 1.0), 12));
  spec.shares = {1, 2};
  EXPECT_THROW(partition(spec, 1000), std::invalid_argument);

  EXPECT_THROW(parse_partition_kind("random"), std::invalid_argument);
  EXPECT_STREQ(partition_kind_name(PartitionKind::size_skew), "size_skew");
}

}  // namespace
}  // namespace cleave::data
