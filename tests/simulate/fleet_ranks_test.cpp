// The pieces of a fleet spread over MPI ranks that need no MPI: which of a
// round's sampled sites each rank trains, and the sites' reports a rank
// sends rank 0, read back exactly.
#include "simulate/fleet_ranks.h"

#include <gtest/gtest.h>

#include "simulate/site_round.h"

namespace cleave::simulate {
namespace {

TEST(FleetRanks, EveryRankTrainsEveryKthSampledSiteAndTogetherAllOfThem) {
  const std::vector<size_t> sampled = {4, 0, 5, 2, 3};
  EXPECT_EQ(share_of(sampled, 0, 3), (std::vector<size_t>{4, 2}));
  EXPECT_EQ(share_of(sampled, 1, 3), (std::vector<size_t>{0, 3}));
  EXPECT_EQ(share_of(sampled, 2, 3), (std::vector<size_t>{5}));
  EXPECT_EQ(share_of(sampled, 0, 1), sampled);
  EXPECT_TRUE(share_of({1}, 1, 2).empty());   // more ranks than sampled sites: some idle
}

TEST(FleetRanks, SiteReportsComeBackExactly) {
  std::vector<aggregator::SiteRound> rounds(2);
  rounds[0].round = 7;
  rounds[0].num_samples = 123;
  rounds[0].trained = true;
  rounds[0].accepted = true;
  rounds[0].cost.tokens = 40960;
  rounds[0].cost.metered_segments = 3;
  rounds[0].cost[metrics::Phase::forward].cpu_seconds = 0.1 + 0.2;   // not a short decimal
  rounds[0].cost[metrics::Phase::backward].wall_seconds = 1.0 / 3.0;
  rounds[0].cost[metrics::Phase::wire].joules = 2.5e-7;
  rounds[1].round = 7;
  rounds[1].error = "update refused: round 6 is closed\nsecond line  with spaces";
  const std::vector<aggregator::SiteRound> back = decode_reports(encode_reports(rounds));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].round, 7u);
  EXPECT_EQ(back[0].num_samples, 123);
  EXPECT_TRUE(back[0].trained);
  EXPECT_TRUE(back[0].accepted);
  EXPECT_EQ(back[0].cost.tokens, 40960);
  EXPECT_EQ(back[0].cost.metered_segments, 3);
  EXPECT_EQ(back[0].cost[metrics::Phase::forward].cpu_seconds, 0.1 + 0.2);
  EXPECT_EQ(back[0].cost[metrics::Phase::backward].wall_seconds, 1.0 / 3.0);
  EXPECT_EQ(back[0].cost[metrics::Phase::wire].joules, 2.5e-7);
  EXPECT_FALSE(back[1].accepted);
  EXPECT_EQ(back[1].error, rounds[1].error);
  EXPECT_TRUE(decode_reports(encode_reports({})).empty());
  EXPECT_THROW(decode_reports("2\n7 1"), std::runtime_error);
}

}  // namespace
}  // namespace cleave::simulate
