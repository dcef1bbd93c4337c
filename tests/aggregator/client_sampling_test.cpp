#include "aggregator/client_sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace cleave::aggregator {
namespace {

std::vector<std::string> ids(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("site-" + std::to_string(100 + i));
  return out;
}

TEST(ClientSampling, DependsOnlyOnSeedRoundAndTheRegisteredSet) {
  std::vector<std::string> shuffled = ids(20);
  std::reverse(shuffled.begin(), shuffled.end());
  const auto a = sample_clients(ids(20), 5, 42, 3);
  EXPECT_EQ(a, sample_clients(shuffled, 5, 42, 3)) << "registration order must not matter";
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()).size(), 5u);
  EXPECT_NE(a, sample_clients(ids(20), 5, 42, 4)) << "rounds draw differently";
  EXPECT_NE(a, sample_clients(ids(20), 5, 43, 3)) << "seeds draw differently";
  EXPECT_EQ(sample_clients(ids(20), 20, 1, 0), ids(20));
  EXPECT_TRUE(sample_clients(ids(3), 0, 1, 0).empty());
}

// A fixed draw, so a change of generator (which would break resuming old
// checkpoints in step) shows up here.
TEST(ClientSampling, GoldenDraw) {
  EXPECT_EQ(sample_clients(ids(10), 3, 7, 0), (std::vector<std::string>{"site-105", "site-107", "site-109"}));
}

TEST(ClientSampling, EveryClientIsDrawnAboutEquallyOften) {
  std::map<std::string, int> hits;
  for (uint32_t round = 0; round < 4000; ++round) {
    for (const std::string& id : sample_clients(ids(10), 2, 9, round)) ++hits[id];
  }
  ASSERT_EQ(hits.size(), 10u);
  for (const auto& [id, count] : hits) EXPECT_NEAR(count, 800, 120) << id;   // 4000 * 2 / 10, ~5 sigma
}

TEST(ClientSampling, RefusesImpossibleRequests) {
  EXPECT_THROW(sample_clients(ids(3), 4, 1, 0), std::invalid_argument);
  EXPECT_THROW(sample_clients({"a", "a"}, 1, 1, 0), std::invalid_argument);
}

TEST(ClientSampling, HowManyToSample) {
  EXPECT_EQ(clients_to_sample(30, 0, 0.1, 1), 3);     // not 4 from 0.1 * 30 rounding up
  EXPECT_EQ(clients_to_sample(31, 0, 0.1, 1), 4);
  EXPECT_EQ(clients_to_sample(10, 0, 0.1, 2), 2);     // at least min_clients
  EXPECT_EQ(clients_to_sample(10, 5, 0.1, 1), 5);     // a count wins over the fraction
  EXPECT_EQ(clients_to_sample(3, 5, 1.0, 1), 3);      // never more than registered
}

// What the DP accountant assumes: each site in independently with the rate.
TEST(ClientSampling, PoissonSamplingIncludesEachSiteIndependentlyAtTheRate) {
  EXPECT_TRUE(poisson_sample(ids(20), 0.0, 5, 0).empty());
  EXPECT_EQ(poisson_sample(ids(20), 1.0, 5, 0).size(), 20u);
  EXPECT_EQ(poisson_sample(ids(20), 0.3, 5, 7), poisson_sample(ids(20), 0.3, 5, 7));
  std::map<std::string, int> hits;
  std::map<size_t, int> sizes;
  for (uint32_t round = 0; round < 4000; ++round) {
    const std::vector<std::string> sampled = poisson_sample(ids(10), 0.2, 11, round);
    ++sizes[sampled.size()];
    for (const std::string& id : sampled) ++hits[id];
  }
  for (const auto& [id, count] : hits) EXPECT_NEAR(count, 800, 130) << id;   // 4000 x 0.2, ~5 sigma
  // Round sizes vary (binomial(10, 0.2)): empty rounds happen (0.8^10 = 10.7%).
  EXPECT_NEAR(sizes[0], 4000 * 0.107, 80);
  EXPECT_THROW(poisson_sample(ids(3), 1.5, 1, 0), std::invalid_argument);
}

// Sequential passes: every registered site once per pass of ceil(n / count)
// rounds, in an order drawn afresh for each pass.
TEST(ClientSampling, PassesDealEverySiteOncePerPass) {
  for (const int count : {1, 3, 4}) {
    const uint32_t per_pass = static_cast<uint32_t>((10 + count - 1) / count);   // 10, 4, 3
    std::vector<std::vector<std::string>> orders;
    for (uint32_t pass = 0; pass < 3; ++pass) {
      std::vector<std::string> dealt;
      for (uint32_t slot = 0; slot < per_pass; ++slot) {
        const std::vector<std::string> round = pass_sample(ids(10), count, 21, pass * per_pass + slot);
        EXPECT_TRUE(std::is_sorted(round.begin(), round.end()));
        // Full rounds of `count`, the pass's last round what is left (10 = 3 + 3 + 3 + 1).
        const size_t expected = slot + 1 < per_pass ? count : 10 - count * (per_pass - 1);
        EXPECT_EQ(round.size(), expected) << "count " << count << ", pass " << pass << ", slot " << slot;
        dealt.insert(dealt.end(), round.begin(), round.end());
      }
      std::vector<std::string> sorted = dealt;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(sorted, ids(10)) << "count " << count << ", pass " << pass << ": each site exactly once";
      orders.push_back(dealt);
    }
    if (count == 1) {
      EXPECT_NE(orders[0], orders[1]) << "each pass draws its own order";
      EXPECT_NE(orders[1], orders[2]);
    }
  }
  std::vector<std::string> shuffled = ids(10);
  std::reverse(shuffled.begin(), shuffled.end());
  EXPECT_EQ(pass_sample(ids(10), 1, 21, 13), pass_sample(shuffled, 1, 21, 13)) << "registration order must not matter";
  EXPECT_NE(pass_sample(ids(10), 1, 21, 0), pass_sample(ids(10), 1, 22, 0)) << "seeds draw differently";
  EXPECT_EQ(pass_sample(ids(4), 4, 1, 5), ids(4));
  EXPECT_THROW(pass_sample(ids(3), 0, 1, 0), std::invalid_argument);
  EXPECT_THROW(pass_sample(ids(3), 4, 1, 0), std::invalid_argument);
  EXPECT_THROW(pass_sample({"a", "a"}, 1, 1, 0), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::aggregator
