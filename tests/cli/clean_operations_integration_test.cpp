// What an operator does to a running federation of separate processes (TLS
// on 127.0.0.1, a tiny model): SIGTERM to the aggregator and the split
// server in the middle of a round, then a restart that resumes from the
// checkpoint; revoking a site, and removing one through the aggregator's
// removed_sites file, while a round waits for it. A site is held in its
// round with the fault point site.round_assigned (it stops itself, sampled
// and not reporting), so the round cannot close without the removal; the
// round deadline is an hour, so a round that closes did not wait for it.
// Every step waits for a log line, never a sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "tests/cli/process_federation.h"

namespace cleave {
namespace {

using Clock = std::chrono::steady_clock;
using test::FederationShape;
using test::ProcessFederation;

int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// SIGTERM while round 1 is open (both sites sampled, the split server
// serving their steps): both services exit 0 within two seconds, saying what
// they abandoned and which checkpoint stands; restarted, they resume from it
// and the run completes every round.
TEST(CleanOperations, SigtermMidRoundThenRestartResumesFromTheCheckpoint) {
  ProcessFederation federation("cli_ops_sigterm_mid_round", FederationShape(3, 6));
  federation.start_all();
  WAIT_FOR(federation.aggregator(), "round 1/3 started: 2 of 2 clients sampled");
  WAIT_FOR(federation.split(), "closed round 0");

  const auto signalled = Clock::now();
  federation.aggregator().signal(SIGTERM);
  federation.split().signal(SIGTERM);
  const auto aggregator_status = federation.aggregator().wait_exit(test::kStartTimeout);
  const int64_t aggregator_ms = ms_since(signalled);
  const auto split_status = federation.split().wait_exit(test::kStartTimeout);
  const int64_t split_ms = ms_since(signalled);
  ASSERT_TRUE(aggregator_status) << federation.aggregator().output();
  ASSERT_TRUE(split_status) << federation.split().output();
  EXPECT_EQ(*aggregator_status, 0) << federation.aggregator().output();
  EXPECT_EQ(*split_status, 0) << federation.split().output();
  EXPECT_LT(aggregator_ms, 2000) << "the aggregator took " << aggregator_ms << " ms to stop after SIGTERM";
  EXPECT_LT(split_ms, 2000) << "the split server took " << split_ms << " ms to stop after SIGTERM";
  RecordProperty("aggregator_sigterm_to_exit_ms", static_cast<int>(aggregator_ms));
  RecordProperty("split_sigterm_to_exit_ms", static_cast<int>(split_ms));
  EXPECT_CONTAINS(federation.aggregator().output(),
                  "stopping after 1 completed rounds (signal); round 1 was open and is abandoned");
  EXPECT_CONTAINS(federation.aggregator().output(),
                  "the checkpoint after round 0 in " + federation.checkpoint_dir() + " stands");
  EXPECT_CONTAINS(federation.split().output(), "stopping at round 1 (signal)");
  EXPECT_CONTAINS(federation.split().output(), "split.gguf (round 1) stands");
  EXPECT_CONTAINS(test::read_text(federation.checkpoint_dir() + "/state.json"), "adapters-round-000000.gguf");

  // The sites retry meanwhile; the restarted services resume where the checkpoints say.
  federation.start_split();
  EXPECT_CONTAINS(federation.split().output(), "split.gguf at round 1");
  federation.start_aggregator();
  EXPECT_CONTAINS(federation.aggregator().output(), "after round 1");
  federation.expect_finished();
  EXPECT_CONTAINS(test::read_text(federation.checkpoint_dir() + "/state.json"), "adapters-round-000002.gguf");
}

// Two sites, either enough to close a round (min_clients 1); site-b holds
// itself at its assignment for round 1, so round 1 waits for it.
ProcessFederation federation_waiting_for_site_b(const std::string& name) {
  FederationShape shape(3, 2);
  shape.min_clients = 1;
  shape.round_deadline_ms = 3600000;
  return ProcessFederation(name, shape);
}

// `site_a_env` as for start_site.
void hold_site_b_in_round_1(ProcessFederation& federation, const std::vector<std::string>& site_a_env = {}) {
  federation.start_split();
  federation.start_aggregator();
  federation.start_site(0, site_a_env);
  federation.start_site(1, {"CLEAVE_FAULT_POINT=site.round_assigned:2"});
  WAIT_FOR(federation.site(1), "fault point site.round_assigned reached \\(pass 2\\)");
  WAIT_FOR(federation.aggregator(), "round 1: update from site-a \\(1/2\\)");
}

// The rest of the run: round 1 closed with site-a's update alone, long
// before its deadline, and every later round samples site-a only.
void expect_finished_without_site_b(ProcessFederation& federation) {
  WAIT_FOR(federation.aggregator(), "round 1 closed: 1 updates");
  WAIT_FOR(federation.aggregator(), "round 2/3 started: 1 of 1 clients sampled \\(site-a\\)");
  federation.expect_finished({0});
  EXPECT_EQ(federation.aggregator().output().find("deadline"), std::string::npos) << federation.aggregator().output();
}

TEST(CleanOperations, ARevokedSiteLeavesTheOpenRoundAtOnce) {
  ProcessFederation federation = federation_waiting_for_site_b("cli_ops_revoked_site");
  ASSERT_NO_FATAL_FAILURE(hold_site_b_in_round_1(federation));
  const test::CliResult revoked = test::run_cleave(
      {"ca", "revoke", "--ca", federation.dir() + "/ca", "--cert", federation.dir() + "/certs/site-b/site-b.crt"});
  ASSERT_EQ(revoked.status, 0) << revoked.output;
  const auto revoked_at = Clock::now();
  // The aggregator reads the changed CRL (secure.crl) within a second.
  WAIT_FOR(federation.aggregator(),
           "site site-b taken out of the federation: its certificate was revoked .*it was sampled in round 1, "
           "which now waits for 0 more of its 1 sampled sites");
  RecordProperty("revocation_to_removal_ms", static_cast<int>(ms_since(revoked_at)));
  ASSERT_NO_FATAL_FAILURE(expect_finished_without_site_b(federation));
  federation.site(1).signal(SIGKILL);   // stopped at its fault point; its certificate is no good any more
}

TEST(CleanOperations, ASiteTheOperatorListsInRemovedSitesLeavesAndIsRefused) {
  ProcessFederation federation = federation_waiting_for_site_b("cli_ops_removed_site");
  // site-a holds itself at round 2's assignment, so that the aggregator is
  // still running when site-b asks it again.
  ASSERT_NO_FATAL_FAILURE(hold_site_b_in_round_1(federation, {"CLEAVE_FAULT_POINT=site.round_assigned:3"}));
  const std::string removed_sites = federation.checkpoint_dir() + "/removed_sites";
  {
    std::ofstream out(removed_sites, std::ios::app);
    out << "# asked to leave on the phone\nsite-b\n";
  }
  WAIT_FOR(federation.aggregator(),
           "site site-b taken out of the federation: removed by the operator \\(listed in " + removed_sites +
               ".*it was sampled in round 1, which now waits for 0 more");
  WAIT_FOR(federation.site(0), "fault point site.round_assigned reached \\(pass 3\\)");
  // Let site-b go on (its round 1 is over at the split server too): its poll
  // and its registration are refused, saying why, and it exits 1.
  federation.site(1).signal(SIGCONT);
  const auto status = federation.site(1).wait_exit(test::kRunTimeout);
  ASSERT_TRUE(status) << federation.site(1).output();
  EXPECT_EQ(*status, 1) << federation.site(1).output();
  EXPECT_CONTAINS(federation.site(1).output(),
                  "site site-b may not take part in this federation: removed by the operator (listed in " +
                      removed_sites);
  federation.site(0).signal(SIGCONT);
  ASSERT_NO_FATAL_FAILURE(expect_finished_without_site_b(federation));
}

}  // namespace
}  // namespace cleave
