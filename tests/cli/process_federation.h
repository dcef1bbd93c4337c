// A federation of separate `cleave` processes on tcp://127.0.0.1 with TLS,
// for the tests that kill, signal, revoke or remove one of them: `cleave
// split-server` (SFL-V1), `cleave aggregator` and `cleave client` sites, a
// few rounds of a tiny model. Every role can be (re)started on the same
// endpoint, so a restarted service is found where the others look for it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/cli/service_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave::test {

// The aggregator's side of the run.
struct FederationShape {
  FederationShape(int rounds_, int steps_) : rounds(rounds_), steps(steps_) {}
  int rounds = 3;
  int steps = 3;                     // local steps per round at every site
  int clients_per_round = 2;
  int min_clients = 2;
  int64_t round_deadline_ms = 300000;
  std::vector<std::string> sites = {"site-a", "site-b"};
  // Multi-hop: the block where a second split server (split-2) takes over
  // from split-1; 0: one split server. Sites then run u_shaped with top_cut 3
  // (the tiny model's 3 blocks: site [0, 1), split-1 [1, 2), split-2 [2, 3)).
  int second_hop_cut = 0;
  // Sites serve Prometheus metrics on 127.0.0.1 (a free port each, logged as
  // "metrics on http://127.0.0.1:PORT").
  bool site_metrics = false;
};

class ProcessFederation {
 public:
  ProcessFederation(const std::string& name, FederationShape shape) : shape_(std::move(shape)) {
    dir_ = scratch_dir(name);
    model_ = write_tiny_model_with_tokenizer(dir_);
    init_ca(dir_);
    issue(dir_, "split-server", "split-1");
    if (shape_.second_hop_cut > 0) issue(dir_, "split-server", "split-2");
    issue(dir_, "aggregator", "agg");
    for (const std::string& site : shape_.sites) issue(dir_, "client", site);
    sites_running_.resize(shape_.sites.size());
  }

  // Starts (or restarts, on the same endpoint) the split server.
  void start_split() {
    if (shape_.second_hop_cut > 0) start_second_hop();
    split_.reset();   // a killed one is reaped first
    const std::string next =
        shape_.second_hop_cut > 0 ? ", next: {address: '" + second_endpoint_ + "', name: split-2, cut_layer: " +
                                        std::to_string(shape_.second_hop_cut) + ", timeout_ms: 3000, max_attempts: 20}"
                                  : "";
    write_file(dir_ + "/split-server.yaml",
               "model: " + model_ + "\n" + kLora + "runtime: {threads: 1}\n"
               "split_server: {bind: '" + (split_endpoint_.empty() ? "tcp://127.0.0.1:0" : split_endpoint_) +
                   "', variant: sfl_v1, checkpoint: " + dir_ + "/split.gguf" + next + "}\n" +
                   secure_section(dir_, "split-1"));
    split_ = std::make_unique<ChildProcess>("split-server",
                                            std::vector<std::string>{"split-server", "--config", dir_ + "/split-server.yaml"});
    const auto endpoint = split_->wait_for(kListening, kStartTimeout);
    ASSERT_TRUE(endpoint) << split_->output();
    split_endpoint_ = *endpoint;
  }

  // Multi-hop: (re)starts split-2, which serves split-1 alone, on the same endpoint.
  void start_second_hop() {
    second_split_.reset();
    write_file(dir_ + "/split-server-2.yaml",
               "model: " + model_ + "\n" + kLora + "runtime: {threads: 1}\n"
               "split_server: {bind: '" + (second_endpoint_.empty() ? "tcp://127.0.0.1:0" : second_endpoint_) +
                   "', variant: sfl_v1, min_cut_layer: " + std::to_string(shape_.second_hop_cut) +
                   ", previous: split-1, checkpoint: " + dir_ + "/split-2.gguf}\n" + secure_section(dir_, "split-2"));
    second_split_ = std::make_unique<ChildProcess>(
        "split-server-2", std::vector<std::string>{"split-server", "--config", dir_ + "/split-server-2.yaml"});
    const auto endpoint = second_split_->wait_for(kListening, kStartTimeout);
    ASSERT_TRUE(endpoint) << second_split_->output();
    second_endpoint_ = *endpoint;
  }

  // `env` adds to the child's environment (a CLEAVE_FAULT_POINT to stop at).
  void start_aggregator(const std::vector<std::string>& env = {}) {
    aggregator_.reset();
    write_file(dir_ + "/aggregator.yaml",
               "model: " + model_ + "\n" + kLora +
                   "aggregator:\n"
                   "  bind: '" + (aggregator_endpoint_.empty() ? "tcp://127.0.0.1:0" : aggregator_endpoint_) + "'\n"
                   "  rounds: " + std::to_string(shape_.rounds) + "\n"
                   "  clients_per_round: " + std::to_string(shape_.clients_per_round) + "\n"
                   "  min_clients: " + std::to_string(shape_.min_clients) + "\n"
                   "  round_deadline_ms: " + std::to_string(shape_.round_deadline_ms) + "\n"
                   "  poll_interval_ms: 100\n"
                   "  cut_layer: 1\n" + top_cut("  ") +
                   "  checkpoint_dir: " + checkpoint_dir() + "\n"
                   "  split_servers: ['" + split_endpoint_ + "']\n"
                   "  split_server_name: split-1\n"
                   "  split_timeout_ms: 3000\n"
                   "  split_max_attempts: 20\n" +
                   secure_section(dir_, "agg"));
    std::vector<std::string> child_env = {"OMP_NUM_THREADS=1"};
    child_env.insert(child_env.end(), env.begin(), env.end());
    aggregator_ = std::make_unique<ChildProcess>(
        "aggregator", std::vector<std::string>{"aggregator", "--config", dir_ + "/aggregator.yaml"}, child_env);
    const auto endpoint = aggregator_->wait_for(kListening, kStartTimeout);
    ASSERT_TRUE(endpoint) << aggregator_->output();
    aggregator_endpoint_ = *endpoint;
  }

  // `env` as for start_aggregator.
  void start_site(size_t i, const std::vector<std::string>& env = {}) {
    const std::string& site = shape_.sites[i];
    sites_running_[i].reset();
    const std::string data = write_site_data(dir_ + "/" + site + ".jsonl", 24, static_cast<int>(i));
    write_file(dir_ + "/" + site + ".yaml",
               "model: " + model_ + "\n" + kLora +
                   "data: {train: " + data + ", seq_len: 16, batch_size: 2}\n"
                   "train: {steps: " + std::to_string(shape_.steps) + ", lr: 0.01, warmup_steps: 0, seed: " +
                   std::to_string(i + 1) + "}\n"
                   "runtime: {threads: 1}\n"
                   "split: {server: '" + split_endpoint_ + "', server_name: split-1, cut_layer: 1, " +
                   (shape_.second_hop_cut > 0 ? "top_cut: 3, " : "") +
                   "timeout_ms: 3000, max_attempts: 40, max_backoff_ms: 500}\n"
                   "client: {aggregator: '" + aggregator_endpoint_ + "', aggregator_name: agg, "
                   "request_timeout_ms: 3000, max_attempts: 40, max_backoff_ms: 500}\n" +
                   (shape_.site_metrics ? "metrics: {listen: '127.0.0.1:0'}\n" : "") +
                   secure_section(dir_, site));
    std::vector<std::string> child_env = {"OMP_NUM_THREADS=1"};
    child_env.insert(child_env.end(), env.begin(), env.end());
    sites_running_[i] = std::make_unique<ChildProcess>(
        site, std::vector<std::string>{"client", "--config", dir_ + "/" + site + ".yaml"}, child_env);
  }

  void start_all() {
    start_split();
    start_aggregator();
    for (size_t i = 0; i < shape_.sites.size(); ++i) start_site(i);
  }

  // The aggregator completed every round and exited 0, as did the sites
  // numbered in `finishing` (default: all); the split server then stops on
  // SIGTERM with status 0.
  void expect_finished(std::vector<size_t> finishing = {}) {
    if (finishing.empty()) {
      for (size_t i = 0; i < shape_.sites.size(); ++i) finishing.push_back(i);
    }
    const std::string rounds = std::to_string(shape_.rounds);
    const auto status = aggregator_->wait_exit(kRunTimeout);
    ASSERT_TRUE(status) << aggregator_->output();
    EXPECT_EQ(*status, 0) << aggregator_->output() << "\n--- split server ---\n" << split_->output();
    EXPECT_CONTAINS(aggregator_->output(), "finished: " + rounds + " rounds completed");
    for (size_t i : finishing) {
      ChildProcess& site = *sites_running_[i];
      SCOPED_TRACE(site.name());
      const auto site_status = site.wait_exit(kRunTimeout);
      ASSERT_TRUE(site_status) << site.output();
      EXPECT_EQ(*site_status, 0) << site.output();
      EXPECT_CONTAINS(site.output(), "the federation finished after " + rounds + " rounds");
    }
    for (ChildProcess* server : {split_.get(), second_split_.get()}) {
      if (!server) continue;
      server->signal(SIGTERM);
      const auto split_status = server->wait_exit(kStartTimeout);
      ASSERT_TRUE(split_status) << server->output();
      EXPECT_EQ(*split_status, 0) << server->output();
    }
  }

  const std::string& dir() const { return dir_; }
  std::string checkpoint_dir() const { return dir_ + "/aggregator"; }
  ChildProcess& split() { return *split_; }
  ChildProcess& second_split() { return *second_split_; }
  ChildProcess& aggregator() { return *aggregator_; }
  ChildProcess& site(size_t i) { return *sites_running_[i]; }

  static constexpr const char* kListening = "listening on (tcp://127\\.0\\.0\\.1:[0-9]+)";

 private:
  static constexpr const char* kLora = "lora: {rank: 2, alpha: 4.0, targets: [q, v]}\n";
  std::string top_cut(const std::string& indent) const {
    return shape_.second_hop_cut > 0 ? indent + "top_cut: 3\n" : "";
  }
  FederationShape shape_;
  std::string dir_, model_;
  std::string split_endpoint_, second_endpoint_, aggregator_endpoint_;
  std::unique_ptr<ChildProcess> split_, second_split_, aggregator_;
  std::vector<std::unique_ptr<ChildProcess>> sites_running_;
};

// Waits for `pattern` in `process`'s output, failing the test with it if it never comes.
#define WAIT_FOR(process, pattern) \
  ASSERT_TRUE((process).wait_for(pattern, ::cleave::test::kRunTimeout)) << (process).name() << ":\n" << (process).output()

}  // namespace cleave::test
