// Bug 2 of the reliability issue, against a real `cleave split-server`
// process over TLS: a peer with no certificate that sends ClientHellos in
// cleave frames and never reads the replies used to block the service's only
// thread in zmq_send for good (no site could train, SIGTERM was ignored).
// Now the server drops that peer, keeps training a real site meanwhile, and
// stops promptly on SIGTERM.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "secure/tls_context.h"
#include "secure/tls_session.h"
#include "tests/cli/service_fixture.h"
#include "transport/channel.h"

namespace cleave {
namespace {

using test::ChildProcess;
using Clock = std::chrono::steady_clock;

// A genuine ClientHello frame (a ClientHello carries no certificate: any
// identity files will do to make one).
net::Bytes client_hello(const std::string& certs, const std::string& name) {
  secure::SecureChannelOptions options;
  options.identity.cert_path = certs + "/" + name + ".crt";
  options.identity.key_path = certs + "/" + name + ".key";
  options.identity.ca_path = certs + "/ca.crt";
  options.allowed_peer_roles = {secure::NodeRole::split_server};
  options.log = [](const std::string&) {};
  secure::TlsContext context(secure::TlsContext::Side::client, options);
  secure::TlsSession session(context, "hostile");
  return *session.take_outgoing_frame();
}

TEST(HostilePeerIntegration, APeerThatNeverReadsCannotStopTheSplitServer) {
  const std::string dir = test::scratch_dir("cli_hostile_peer");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  const std::string data = test::write_site_data(dir + "/train.jsonl", 64, 0);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  const std::string site_certs = test::issue(dir, "client", "site-a");
  test::write_file(dir + "/split-server.yaml", "model: " + model + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "runtime: {threads: 1}\n"
                   "split_server: {bind: tcp://127.0.0.1:0, min_cut_layer: 1}\n" +
                       test::secure_section(dir, "split-1"));
  ChildProcess server("split-server", {"split-server", "--config", dir + "/split-server.yaml"});
  const auto endpoint = server.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(endpoint) << server.output();

  // The hostile peer: takes one message in, with a 4 KiB socket buffer, and
  // sends ClientHellos as fast as the server takes them.
  const net::Bytes hello = client_hello(site_certs, "site-a");
  zmq::context_t context;
  zmq::socket_t hostile(context, zmq::socket_type::dealer);
  hostile.set(zmq::sockopt::linger, 0);
  hostile.set(zmq::sockopt::rcvhwm, 1);
  hostile.set(zmq::sockopt::rcvbuf, 4096);
  hostile.set(zmq::sockopt::sndtimeo, 100);   // so the flood thread looks at its stop flag
  hostile.connect(*endpoint);
  std::atomic<bool> stop_flood{false};
  std::atomic<int64_t> hellos_sent{0};
  std::thread flood([&] {
    while (!stop_flood.load()) {
      if (hostile.send(zmq::buffer(hello), zmq::send_flags::none)) ++hellos_sent;
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop = true;
      thread.join();
    }
  } joiner{stop_flood, flood};

  // The server finds the peer not reading and drops it instead of waiting on it.
  EXPECT_TRUE(server.wait_for("not reading", test::kStartTimeout))
      << hellos_sent.load() << " ClientHellos sent\n" << server.output();

  // With the flood still running, a real site trains through the server.
  test::write_file(dir + "/train.yaml", "model: " + model + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "data: {train: " + data + ", seq_len: 16, batch_size: 4}\n"
                   "train: {steps: 8, lr: 0.02, warmup_steps: 0, log_every: 1, seed: 3}\n"
                   "runtime: {threads: 1}\n"
                   "output: {dir: " + dir + "/run}\n"
                   "split: {server: '" + *endpoint + "', server_name: split-1, cut_layer: 1, timeout_ms: 60000}\n" +
                       test::secure_section(dir, "site-a"));
  const test::CliResult train = test::run_cleave({"train", "--config", dir + "/train.yaml"});
  EXPECT_EQ(train.status, 0) << train.output << "\n--- split server ---\n" << server.output();
  EXPECT_EQ(test::train_losses(dir + "/run").size(), 8u) << train.output;

  // And it still answers SIGTERM at once, flood or not.
  ASSERT_TRUE(server.wait_for("client site-a joined", test::kStartTimeout)) << server.output();
  const auto signalled = Clock::now();
  server.signal(SIGTERM);
  const auto status = server.wait_exit(std::chrono::milliseconds(10000));
  const auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - signalled).count();
  ASSERT_TRUE(status) << "no exit within 10 s of SIGTERM\n" << server.output();
  EXPECT_EQ(*status, 0) << server.output();
  EXPECT_LT(stop_ms, 2000) << "the split server took " << stop_ms << " ms to stop after SIGTERM";
  RecordProperty("sigterm_to_exit_ms", static_cast<int>(stop_ms));
  RecordProperty("client_hellos_sent", static_cast<int>(hellos_sent.load()));
}

}  // namespace
}  // namespace cleave
