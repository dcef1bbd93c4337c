// Multi-hop split across separate processes on tcp://127.0.0.1 with TLS: two
// `cleave client` sites, `cleave split-server` split-1 (blocks [1, 2)) that
// relays to split-server split-2 (block [2, 3)), presenting its own
// certificate, and `cleave aggregator`, for two rounds.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/cli/process_federation.h"

namespace cleave {
namespace {

TEST(MultiHopIntegration, SitesTrainThroughTwoSplitServerProcessesForTwoRounds) {
  test::FederationShape shape(2, 3);
  shape.second_hop_cut = 2;
  test::ProcessFederation federation("cli_multi_hop", shape);
  federation.start_all();
  federation.expect_finished();
  const std::string first = federation.split().output(), second = federation.second_split().output();
  EXPECT_CONTAINS(first, "serving blocks [1, 2) then the split server at tcp://127.0.0.1:");
  EXPECT_CONTAINS(second, "for split server split-1");
  for (const std::string& site : {"site-a", "site-b"}) {
    EXPECT_CONTAINS(first, "client " + site + " joined");
    EXPECT_CONTAINS(second, "client " + site + " joined");   // relayed under the site's id
  }
  // The aggregator's round closes reached both hops, each averaging its own blocks' copies.
  for (const std::string& log : {first, second}) {
    EXPECT_CONTAINS(log, "closed round 0 (2 clients;");
    EXPECT_CONTAINS(log, "closed round 1 (2 clients;");
  }
  EXPECT_TRUE(std::filesystem::exists(federation.dir() + "/split-2.gguf"));
}

// A later hop killed (-9) mid-round and restarted on its endpoint resumes
// from its checkpoint: the first hop's request finds the site unknown there,
// the site says hello again through the chain, and the run completes.
TEST(MultiHopIntegration, ASecondHopKilledMidRoundAndRestartedResumes) {
  test::FederationShape shape(3, 40);   // rounds long enough to be killed in
  shape.second_hop_cut = 2;
  test::ProcessFederation federation("cli_multi_hop_restart", shape);
  federation.start_all();
  WAIT_FOR(federation.second_split(), "closed round 0");
  federation.second_split().signal(SIGKILL);
  ASSERT_TRUE(federation.second_split().wait_exit(test::kStartTimeout));
  federation.start_second_hop();
  federation.expect_finished();
  EXPECT_CONTAINS(federation.second_split().output(), "resumed from " + federation.dir() + "/split-2.gguf");
  EXPECT_CONTAINS(federation.second_split().output(), "closed round 2");
}

}  // namespace
}  // namespace cleave
