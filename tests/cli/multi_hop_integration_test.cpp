// Multi-hop split across separate processes on tcp://127.0.0.1 with TLS: two
// `cleave client` sites, `cleave split-server` split-1 (blocks [1, 2)) that
// relays to split-server split-2 (block [2, 3)), presenting its own
// certificate, and `cleave aggregator`, for two rounds.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/cli/cli_runner.h"
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
  for (const std::string site : {"site-a", "site-b"}) {
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

// A next hop whose certificate is not a split server's (here a client's) is
// refused at the TLS handshake, and the site's request says so, naming the
// peer and the role, instead of only that nobody answered.
TEST(MultiHopIntegration, ANextHopWithTheWrongCertificateRoleIsRefusedNamingIt) {
  const std::string dir = test::scratch_dir("cli_multi_hop_wrong_role");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  test::issue(dir, "client", "split-2");   // not a split server's certificate
  test::issue(dir, "client", "site-a");
  const std::string lora = "lora: {rank: 2, alpha: 4.0, targets: [q, v]}\nruntime: {threads: 1}\n";
  test::write_file(dir + "/split-2.yaml", "model: " + model + "\n" + lora +
                                              "split_server: {bind: 'tcp://127.0.0.1:0', min_cut_layer: 2, "
                                              "previous: split-1}\n" + test::secure_section(dir, "split-2"));
  test::ChildProcess second("split-server-2", {"split-server", "--config", dir + "/split-2.yaml"});
  const auto second_endpoint = second.wait_for(test::ProcessFederation::kListening, test::kStartTimeout);
  ASSERT_TRUE(second_endpoint) << second.output();
  test::write_file(dir + "/split-1.yaml",
                   "model: " + model + "\n" + lora + "split_server: {bind: 'tcp://127.0.0.1:0', next: {address: '" +
                       *second_endpoint + "', name: split-2, cut_layer: 2, timeout_ms: 2000, max_attempts: 2}}\n" +
                       test::secure_section(dir, "split-1"));
  test::ChildProcess first("split-server", {"split-server", "--config", dir + "/split-1.yaml"});
  const auto first_endpoint = first.wait_for(test::ProcessFederation::kListening, test::kStartTimeout);
  ASSERT_TRUE(first_endpoint) << first.output();
  test::write_file(dir + "/site.yaml", "model: " + model + "\n" + lora + "split: {server: '" + *first_endpoint +
                                           "', server_name: split-1, cut_layer: 1, top_cut: 3, timeout_ms: 20000, "
                                           "max_attempts: 1}\n" + test::secure_section(dir, "site-a"));
  const test::CliResult site = test::run_cleave({"generate", "--config", dir + "/site.yaml", "--prompt", "the", "-n", "2"});
  EXPECT_NE(site.status, 0) << site.output;
  EXPECT_CONTAINS(site.output, "the next split server (blocks from 2) at tls+tcp://127.0.0.1:");
  EXPECT_CONTAINS(site.output, "role client of node 'split-2' may not connect here");
}

}  // namespace
}  // namespace cleave
