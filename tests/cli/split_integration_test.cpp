// `cleave split-server` and `cleave train` with a split: section as separate
// processes over TLS on tcp://127.0.0.1 (certificates from `cleave ca`): the
// client trains its bottom block through the server, the loss goes down, and
// the server stops cleanly on SIGTERM. Then `cleave export-peft` writes the
// client's adapter in PEFT's layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "tests/cli/service_fixture.h"

namespace cleave {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;
using test::run_cleave;

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(to),
                         0.0) /
         static_cast<double>(to - from);
}

TEST(SplitIntegration, TrainAgainstSplitServerProcessOverTls) {
  const std::string dir = test::scratch_dir("cli_split_integration");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  const std::string data = test::write_site_data(dir + "/train.jsonl", 64, 0);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  test::issue(dir, "client", "site-a");

  test::write_file(dir + "/split-server.yaml",
                   "model: " + model + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "runtime: {threads: 1}\n"
                   "split_server: {bind: tcp://127.0.0.1:0, min_cut_layer: 1, checkpoint: " + dir +
                       "/server-adapters.gguf}\n" +
                       test::secure_section(dir, "split-1"));
  ChildProcess server("split-server", {"split-server", "--config", dir + "/split-server.yaml"});
  const auto endpoint = server.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(endpoint) << server.output();
  EXPECT_CONTAINS(server.output(), "(TLS 1.3)");

  const std::string run_dir = dir + "/run";
  test::write_file(dir + "/train.yaml",
                   "model: " + model + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "data: {train: " + data + ", seq_len: 16, batch_size: 4}\n"
                   "train: {steps: 16, lr: 0.02, warmup_steps: 0, log_every: 1, seed: 3}\n"
                   "runtime: {threads: 1}\n"
                   "output: {dir: " + run_dir + "}\n"
                   "split: {server: '" + *endpoint + "', server_name: split-1, cut_layer: 1, timeout_ms: 60000}\n" +
                       test::secure_section(dir, "site-a"));
  const test::CliResult train = run_cleave({"train", "--config", dir + "/train.yaml"});
  ASSERT_EQ(train.status, 0) << train.output << "\n--- split server ---\n" << server.output();
  EXPECT_CONTAINS(train.output,
                  "split: client site-a, blocks [0, 1) and [2, 3), the head and the loss here (u_shaped: the "
                  "labels stay here)");
  EXPECT_CONTAINS(train.output, "split: 0 label bytes sent to the split server (u_shaped: the labels stayed here)");

  const std::vector<double> losses = test::train_losses(run_dir);
  ASSERT_EQ(losses.size(), 16u) << train.output;
  EXPECT_LT(mean(losses, 12, 16), mean(losses, 0, 4) - 0.1) << train.output;
  EXPECT_TRUE(fs::exists(run_dir + "/adapter.gguf"));

  // The server saw the client under its certificate name and stops on SIGTERM.
  ASSERT_TRUE(server.wait_for("client site-a joined", test::kStartTimeout)) << server.output();
  server.signal(SIGTERM);
  const auto status = server.wait_exit(test::kStartTimeout);
  ASSERT_TRUE(status) << server.output();
  EXPECT_EQ(*status, 0) << server.output();
  EXPECT_CONTAINS(server.output(), "stopping at round 0 (signal)");

  // The client's adapter (blocks 0 and 2) in PEFT's layout.
  const test::CliResult peft = run_cleave(
      {"export-peft", "--model", model, "--adapter", run_dir + "/adapter.gguf", "--out", dir + "/peft"});
  ASSERT_EQ(peft.status, 0) << peft.output;
  EXPECT_TRUE(fs::exists(dir + "/peft/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/peft/adapter_config.json"));
}

TEST(SplitIntegration, PlaintextNeedsExplicitInsecureAndIsLogged) {
  const std::string dir = test::scratch_dir("cli_split_insecure");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  // Without secure files and without insecure: true the server refuses to start.
  test::write_file(dir + "/no-tls.yaml", "model: " + model + "\nsplit_server: {bind: tcp://127.0.0.1:0}\n");
  const test::CliResult refused = run_cleave({"split-server", "--config", dir + "/no-tls.yaml"});
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_CONTAINS(refused.output, "secure.cert: required");

  test::write_file(dir + "/plain.yaml", "model: " + model +
                                            "\nruntime: {threads: 1}\nsplit_server: {bind: tcp://127.0.0.1:0}\n"
                                            "secure: {insecure: true}\n");
  ChildProcess server("split-server", {"split-server", "--config", dir + "/plain.yaml"});
  ASSERT_TRUE(server.wait_for("listening on tcp://", test::kStartTimeout)) << server.output();
  EXPECT_CONTAINS(server.output(), "is NOT encrypted or authenticated");
  server.signal(SIGINT);
  const auto status = server.wait_exit(test::kStartTimeout);
  ASSERT_TRUE(status) << server.output();
  EXPECT_EQ(*status, 0) << server.output();
}

}  // namespace
}  // namespace cleave
