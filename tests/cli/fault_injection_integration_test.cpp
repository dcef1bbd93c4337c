// Fault injection against a federation of separate processes on
// tcp://127.0.0.1 with TLS: `cleave split-server` (SFL-V1), `cleave
// aggregator` and two `cleave client` sites, a few rounds of a tiny model.
// Each test kills (-9) or signals one role at a point it waits for in the
// logs (never a sleep), restarts it on the same port where the scenario calls
// for it, and asserts that the run still completes every round and every
// process exits cleanly.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "tests/cli/process_federation.h"

namespace cleave {
namespace {

using test::ChildProcess;
using Clock = std::chrono::steady_clock;
// Two sites, both sampled in every round (min_clients 2).
using Federation = test::ProcessFederation;

TEST(FaultInjection, SplitServerKilledMidRoundAndRestarted) {
  Federation federation("cli_fault_split_mid_round", {3, 6});
  federation.start_all();
  WAIT_FOR(federation.split(), "client site-a joined");
  federation.split().signal(SIGKILL);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout));
  federation.start_split();
  federation.expect_finished();
}

TEST(FaultInjection, SplitServerKilledJustAfterARoundClosesAndRestarted) {
  Federation federation("cli_fault_split_after_close", {3, 3});
  federation.start_all();
  WAIT_FOR(federation.split(), "closed round 0");
  federation.split().signal(SIGKILL);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout));
  federation.start_split();
  EXPECT_CONTAINS(federation.split().output(), "split.gguf at round 1");   // resumed from its checkpoint
  federation.expect_finished();
}

TEST(FaultInjection, AggregatorKilledMidRoundAndRestartedResumesFromItsCheckpoint) {
  Federation federation("cli_fault_aggregator_mid_round", {3, 3});
  federation.start_all();
  WAIT_FOR(federation.aggregator(), "round 1/3 started");
  federation.aggregator().signal(SIGKILL);
  ASSERT_TRUE(federation.aggregator().wait_exit(test::kStartTimeout));
  federation.start_aggregator();
  EXPECT_CONTAINS(federation.aggregator().output(), "after round 1");   // resumed from its checkpoint
  federation.expect_finished();
}

// kill -9 while the aggregator writes round 1's checkpoint: round 1's
// adapters are on disk, state.json still names round 0. The restart resumes
// after round 0, runs round 1 again and finishes; the debris is replaced.
TEST(FaultInjection, AggregatorKilledDuringItsCheckpointResumesFromThePreviousRound) {
  Federation federation("cli_fault_aggregator_checkpoint", {3, 2});
  federation.start_split();
  federation.start_aggregator({"CLEAVE_FAULT_POINT=aggregator.checkpoint.adapters_written:2"});
  federation.start_site(0);
  federation.start_site(1);
  WAIT_FOR(federation.aggregator(), "fault point aggregator.checkpoint.adapters_written reached \\(pass 2\\)");
  federation.aggregator().signal(SIGKILL);   // stopped inside save_checkpoint
  ASSERT_TRUE(federation.aggregator().wait_exit(test::kStartTimeout));
  EXPECT_TRUE(std::filesystem::exists(federation.dir() + "/aggregator/adapters-round-000001.gguf"));
  EXPECT_CONTAINS(test::read_text(federation.dir() + "/aggregator/state.json"), "adapters-round-000000.gguf");
  federation.start_aggregator();
  EXPECT_CONTAINS(federation.aggregator().output(), "after round 1");   // one round completed: round 0
  federation.expect_finished();
  EXPECT_CONTAINS(test::read_text(federation.dir() + "/aggregator/state.json"), "adapters-round-000002.gguf");
}

TEST(FaultInjection, SiteKilledMidRoundAndRestartedRejoins) {
  Federation federation("cli_fault_site_mid_round", {2, 6});
  federation.start_all();
  WAIT_FOR(federation.split(), "client site-b joined");
  federation.site(1).signal(SIGKILL);
  ASSERT_TRUE(federation.site(1).wait_exit(test::kStartTimeout));
  federation.start_site(1);
  federation.expect_finished();
}

// A site whose aggregator is gone retries; SIGTERM ends it within a second
// or so, with status 0, whatever the retry was doing.
TEST(FaultInjection, SigtermStopsASiteThatIsRetryingADeadAggregator) {
  Federation federation("cli_fault_sigterm_retry", {3, 3});
  federation.start_all();
  WAIT_FOR(federation.aggregator(), "round 0/3 started");
  federation.aggregator().signal(SIGKILL);
  ASSERT_TRUE(federation.aggregator().wait_exit(test::kStartTimeout));
  WAIT_FOR(federation.site(0), "retrying in");
  const auto signalled = Clock::now();
  federation.site(0).signal(SIGTERM);
  const auto status = federation.site(0).wait_exit(test::kStartTimeout);
  const auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - signalled).count();
  ASSERT_TRUE(status) << federation.site(0).output();
  EXPECT_EQ(*status, 0) << federation.site(0).output();
  EXPECT_LT(stop_ms, 2000) << "site-a took " << stop_ms << " ms to stop after SIGTERM";
  EXPECT_CONTAINS(federation.site(0).output(), "(signal)");
  RecordProperty("site_sigterm_to_exit_ms", static_cast<int>(stop_ms));

  // The split server, idle, stops as promptly.
  const auto split_signalled = Clock::now();
  federation.split().signal(SIGTERM);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout)) << federation.split().output();
  const auto split_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - split_signalled).count();
  EXPECT_LT(split_ms, 2000) << "the split server took " << split_ms << " ms to stop after SIGTERM";
}

// An aggregator retrying a split server that is gone (here at its start,
// bringing the split server to round 0) stops on SIGTERM at once, status 0.
TEST(FaultInjection, SigtermStopsAnAggregatorRetryingADeadSplitServer) {
  Federation federation("cli_fault_sigterm_aggregator", {2, 1});
  federation.start_split();
  federation.split().signal(SIGKILL);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout));
  federation.start_aggregator();
  federation.start_site(0);
  federation.start_site(1);
  WAIT_FOR(federation.aggregator(), "did not confirm that it will move to round 0 .*retrying in");
  const auto signalled = Clock::now();
  federation.aggregator().signal(SIGTERM);
  const auto status = federation.aggregator().wait_exit(test::kStartTimeout);
  const auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - signalled).count();
  ASSERT_TRUE(status) << federation.aggregator().output();
  EXPECT_EQ(*status, 0) << federation.aggregator().output();
  EXPECT_LT(stop_ms, 2000) << "the aggregator took " << stop_ms << " ms to stop after SIGTERM";
  EXPECT_CONTAINS(federation.aggregator().output(), "stopped while bringing split server");
  RecordProperty("aggregator_sigterm_to_exit_ms", static_cast<int>(stop_ms));
}

}  // namespace
}  // namespace cleave
