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

#include "tests/cli/service_fixture.h"

namespace cleave {
namespace {

using test::ChildProcess;
using Clock = std::chrono::steady_clock;
constexpr const char* kListening = "listening on (tcp://127\\.0\\.0\\.1:[0-9]+)";

class Federation {
 public:
  Federation(const std::string& name, int rounds, int steps) : rounds_(rounds), steps_(steps) {
    dir_ = test::scratch_dir(name);
    model_ = test::write_tiny_model_with_tokenizer(dir_);
    test::init_ca(dir_);
    test::issue(dir_, "split-server", "split-1");
    test::issue(dir_, "aggregator", "agg");
    for (const std::string& site : sites_) test::issue(dir_, "client", site);
  }

  // Starts (or restarts, on the same endpoint) the split server.
  void start_split() {
    split_.reset();   // a killed one is reaped first
    test::write_file(dir_ + "/split-server.yaml",
                     "model: " + model_ + "\n" + kLora + "runtime: {threads: 1}\n"
                     "split_server: {bind: '" + (split_endpoint_.empty() ? "tcp://127.0.0.1:0" : split_endpoint_) +
                         "', variant: sfl_v1, checkpoint: " + dir_ + "/split.gguf}\n" +
                         test::secure_section(dir_, "split-1"));
    split_ = std::make_unique<ChildProcess>("split-server",
                                            std::vector<std::string>{"split-server", "--config", dir_ + "/split-server.yaml"});
    const auto endpoint = split_->wait_for(kListening, test::kStartTimeout);
    ASSERT_TRUE(endpoint) << split_->output();
    split_endpoint_ = *endpoint;
  }

  // `env` adds to the child's environment (a CLEAVE_FAULT_POINT to stop at).
  void start_aggregator(const std::vector<std::string>& env = {}) {
    aggregator_.reset();
    test::write_file(dir_ + "/aggregator.yaml",
                     "model: " + model_ + "\n" + kLora +
                         "aggregator:\n"
                         "  bind: '" + (aggregator_endpoint_.empty() ? "tcp://127.0.0.1:0" : aggregator_endpoint_) + "'\n"
                         "  rounds: " + std::to_string(rounds_) + "\n"
                         "  clients_per_round: 2\n"
                         "  min_clients: 2\n"
                         "  round_deadline_ms: 300000\n"
                         "  poll_interval_ms: 100\n"
                         "  cut_layer: 1\n"
                         "  checkpoint_dir: " + dir_ + "/aggregator\n"
                         "  split_servers: ['" + split_endpoint_ + "']\n"
                         "  split_server_name: split-1\n"
                         "  split_timeout_ms: 3000\n"
                         "  split_max_attempts: 20\n" +
                         test::secure_section(dir_, "agg"));
    std::vector<std::string> child_env = {"OMP_NUM_THREADS=1"};
    child_env.insert(child_env.end(), env.begin(), env.end());
    aggregator_ = std::make_unique<ChildProcess>(
        "aggregator", std::vector<std::string>{"aggregator", "--config", dir_ + "/aggregator.yaml"}, child_env);
    const auto endpoint = aggregator_->wait_for(kListening, test::kStartTimeout);
    ASSERT_TRUE(endpoint) << aggregator_->output();
    aggregator_endpoint_ = *endpoint;
  }

  void start_site(size_t i) {
    const std::string& site = sites_[i];
    sites_running_[i].reset();
    const std::string data = test::write_site_data(dir_ + "/" + site + ".jsonl", 24, static_cast<int>(i));
    test::write_file(dir_ + "/" + site + ".yaml",
                     "model: " + model_ + "\n" + kLora +
                         "data: {train: " + data + ", seq_len: 16, batch_size: 2}\n"
                         "train: {steps: " + std::to_string(steps_) + ", lr: 0.01, warmup_steps: 0, seed: " +
                         std::to_string(i + 1) + "}\n"
                         "runtime: {threads: 1}\n"
                         "split: {server: '" + split_endpoint_ + "', server_name: split-1, cut_layer: 1, "
                         "timeout_ms: 3000, max_attempts: 40, max_backoff_ms: 500}\n"
                         "client: {aggregator: '" + aggregator_endpoint_ + "', aggregator_name: agg, "
                         "request_timeout_ms: 3000, max_attempts: 40, max_backoff_ms: 500}\n" +
                         test::secure_section(dir_, site));
    sites_running_[i] = std::make_unique<ChildProcess>(
        site, std::vector<std::string>{"client", "--config", dir_ + "/" + site + ".yaml"});
  }

  void start_all() {
    start_split();
    start_aggregator();
    for (size_t i = 0; i < sites_.size(); ++i) start_site(i);
  }

  // Every round completed, every process ended with status 0.
  void expect_finished() {
    const auto status = aggregator_->wait_exit(test::kRunTimeout);
    ASSERT_TRUE(status) << aggregator_->output();
    EXPECT_EQ(*status, 0) << aggregator_->output() << "\n--- split server ---\n" << split_->output();
    EXPECT_CONTAINS(aggregator_->output(), "finished: " + std::to_string(rounds_) + " rounds completed");
    for (auto& site : sites_running_) {
      SCOPED_TRACE(site->name());
      const auto site_status = site->wait_exit(test::kRunTimeout);
      ASSERT_TRUE(site_status) << site->output();
      EXPECT_EQ(*site_status, 0) << site->output();
      EXPECT_CONTAINS(site->output(), "the federation finished after " + std::to_string(rounds_) + " rounds");
    }
    split_->signal(SIGTERM);
    const auto split_status = split_->wait_exit(test::kStartTimeout);
    ASSERT_TRUE(split_status) << split_->output();
    EXPECT_EQ(*split_status, 0) << split_->output();
  }

  const std::string& dir() const { return dir_; }
  ChildProcess& split() { return *split_; }
  ChildProcess& aggregator() { return *aggregator_; }
  ChildProcess& site(size_t i) { return *sites_running_[i]; }

 private:
  static constexpr const char* kLora = "lora: {rank: 2, alpha: 4.0, targets: [q, v]}\n";
  int rounds_, steps_;
  std::string dir_, model_;
  const std::vector<std::string> sites_ = {"site-a", "site-b"};
  std::string split_endpoint_, aggregator_endpoint_;
  std::unique_ptr<ChildProcess> split_, aggregator_;
  std::vector<std::unique_ptr<ChildProcess>> sites_running_{2};
};

// Waits for `pattern` in `process`'s output, failing the test with it if it never comes.
#define WAIT_FOR(process, pattern) \
  ASSERT_TRUE((process).wait_for(pattern, test::kRunTimeout)) << (process).name() << ":\n" << (process).output()

TEST(FaultInjection, SplitServerKilledMidRoundAndRestarted) {
  Federation federation("cli_fault_split_mid_round", 3, 6);
  federation.start_all();
  WAIT_FOR(federation.split(), "client site-a joined");
  federation.split().signal(SIGKILL);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout));
  federation.start_split();
  federation.expect_finished();
}

TEST(FaultInjection, SplitServerKilledJustAfterARoundClosesAndRestarted) {
  Federation federation("cli_fault_split_after_close", 3, 3);
  federation.start_all();
  WAIT_FOR(federation.split(), "closed round 0");
  federation.split().signal(SIGKILL);
  ASSERT_TRUE(federation.split().wait_exit(test::kStartTimeout));
  federation.start_split();
  EXPECT_CONTAINS(federation.split().output(), "split.gguf at round 1");   // resumed from its checkpoint
  federation.expect_finished();
}

TEST(FaultInjection, AggregatorKilledMidRoundAndRestartedResumesFromItsCheckpoint) {
  Federation federation("cli_fault_aggregator_mid_round", 3, 3);
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
  Federation federation("cli_fault_aggregator_checkpoint", 3, 2);
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
  Federation federation("cli_fault_site_mid_round", 2, 6);
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
  Federation federation("cli_fault_sigterm_retry", 3, 3);
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
  Federation federation("cli_fault_sigterm_aggregator", 2, 1);
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
