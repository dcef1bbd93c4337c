// `cleave ca init | issue | revoke`: the files and their modes, refusals of
// bad input, and a revoked site refused by a running split server while a
// valid site is served.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/cli/service_fixture.h"

namespace cleave {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;
using test::run_cleave;

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<unsigned>(st.st_mode & 07777);
}

TEST(CaIntegration, InitIssueRevokeWriteTheFilesWithTheirModes) {
  const std::string dir = test::scratch_dir("cli_ca_files");
  const std::string ca = test::init_ca(dir);
  EXPECT_EQ(mode_of(ca + "/ca.key"), 0600u);
  EXPECT_EQ(mode_of(ca + "/ca.crt"), 0644u);
  EXPECT_EQ(mode_of(ca + "/crl.pem"), 0644u);

  // An existing CA is never overwritten by accident.
  const test::CliResult again = run_cleave({"ca", "init", "--out", ca});
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_CONTAINS(again.output, "cleave ca init: error:");

  const test::CliResult issued = run_cleave(
      {"ca", "issue", "--ca", ca, "--role", "client", "--name", "site-a", "--out", dir + "/site-a", "--days", "30"});
  ASSERT_EQ(issued.status, 0) << issued.output;
  EXPECT_CONTAINS(issued.output, "issued client certificate for site-a");
  EXPECT_CONTAINS(issued.output, "site-a.key (mode 0600)");
  EXPECT_EQ(mode_of(dir + "/site-a/site-a.key"), 0600u);
  EXPECT_EQ(mode_of(dir + "/site-a/site-a.crt"), 0644u);
  EXPECT_TRUE(fs::exists(dir + "/site-a/ca.crt"));
  EXPECT_TRUE(fs::exists(dir + "/site-a/crl.pem"));

  const test::CliResult bad_role =
      run_cleave({"ca", "issue", "--ca", ca, "--role", "doctor", "--name", "x", "--out", dir + "/x"});
  EXPECT_EQ(bad_role.status, 2) << bad_role.output;
  EXPECT_CONTAINS(bad_role.output, "--role");
  const test::CliResult bad_name =
      run_cleave({"ca", "issue", "--ca", ca, "--role", "client", "--name", "../evil", "--out", dir + "/x"});
  EXPECT_NE(bad_name.status, 0) << bad_name.output;

  const std::string crl_before = test::read_text(ca + "/crl.pem");
  const test::CliResult revoked = run_cleave({"ca", "revoke", "--ca", ca, "--cert", dir + "/site-a/site-a.crt"});
  ASSERT_EQ(revoked.status, 0) << revoked.output;
  EXPECT_CONTAINS(revoked.output, "revoked site-a");
  EXPECT_NE(test::read_text(ca + "/crl.pem"), crl_before);

  const test::CliResult group = run_cleave({"ca"});
  EXPECT_EQ(group.status, 2);
  EXPECT_CONTAINS(group.output, "ca issue");
  const test::CliResult help = run_cleave({"ca", "issue", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_CONTAINS(help.output, "--role");
}

TEST(CaIntegration, RevokedSiteIsRefusedWhileAnotherIsServed) {
  const std::string dir = test::scratch_dir("cli_ca_revoked");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  const std::string data = test::write_site_data(dir + "/train.jsonl", 16, 1);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  test::issue(dir, "client", "site-a");
  const std::string site_b = test::issue(dir, "client", "site-b");
  const test::CliResult revoked = run_cleave({"ca", "revoke", "--ca", dir + "/ca", "--cert", site_b + "/site-b.crt"});
  ASSERT_EQ(revoked.status, 0) << revoked.output;

  test::write_file(dir + "/split-server.yaml", "model: " + model +
                                                   "\nlora: {rank: 2}\nruntime: {threads: 1}\n"
                                                   "split_server: {bind: tcp://127.0.0.1:0}\n" +
                                                   test::secure_section(dir, "split-1"));
  ChildProcess server("split-server", {"split-server", "--config", dir + "/split-server.yaml"});
  const auto endpoint = server.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(endpoint) << server.output();

  auto train_as = [&](const std::string& name, const std::string& split_extra) {
    const std::string yaml = dir + "/train-" + name + ".yaml";
    test::write_file(yaml, "model: " + model + "\nlora: {rank: 2}\n"
                           "data: {train: " + data + ", seq_len: 16, batch_size: 2}\n"
                           "train: {steps: 2, warmup_steps: 0}\nruntime: {threads: 1}\n"
                           "output: {dir: " + dir + "/run-" + name + "}\n"
                           "split: {server: '" + *endpoint + "', cut_layer: 1, timeout_ms: 30000, max_attempts: 1" +
                               split_extra + "}\n" +
                           test::secure_section(dir, name) + "  handshake_timeout_ms: 20000\n");
    return run_cleave({"train", "--config", yaml});
  };

  const test::CliResult refused = train_as("site-b", "");
  EXPECT_EQ(refused.status, 1) << refused.output;
  const test::CliResult served = train_as("site-a", "");
  EXPECT_EQ(served.status, 0) << served.output << "\n--- split server ---\n" << server.output();
  ASSERT_TRUE(server.wait_for("client site-a joined", test::kStartTimeout)) << server.output();
  EXPECT_CONTAINS(server.output(), "revoked");
  EXPECT_EQ(server.output().find("client site-b joined"), std::string::npos) << server.output();

  server.signal(SIGTERM);
  const auto status = server.wait_exit(test::kStartTimeout);
  ASSERT_TRUE(status) << server.output();
  EXPECT_EQ(*status, 0) << server.output();
}

}  // namespace
}  // namespace cleave
