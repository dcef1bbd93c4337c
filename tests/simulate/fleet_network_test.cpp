// The simulated fleet's channels: under the run's throw-away CA a site
// reaches a service under its own certificate, over the in-process transport
// and TCP loopback alike; a certificate from another CA, a certificate of the
// wrong role and a site speaking for another site are refused while valid
// sites are still served; insecure runs are plaintext with a warning.
#include "simulate/fleet_network.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "aggregator/federation_messages.h"
#include "aggregator/peer_policies.h"
#include "secure/ca.h"
#include "split/peer_policy.h"
#include "split/split_messages.h"
#include "tests/support/shared_data.h"

namespace cleave::simulate {
namespace {

using net::Millis;

net::Bytes text_bytes(const std::string& text) { return net::Bytes(text.begin(), text.end()); }

// Lines logged by the network and its channels, from any thread.
class Log {
 public:
  cleave::Log sink() {
    return cleave::Log(
        [this](const std::string& line) {
          std::lock_guard<std::mutex> lock(mutex_);
          text_ += line + "\n";
        },
        LogLevel::debug);
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }
  bool contains(const std::string& part) const { return text().find(part) != std::string::npos; }

 private:
  mutable std::mutex mutex_;
  std::string text_;
};

// Serves a bound channel on its own thread: keeps every message that gets
// through and echoes it back.
class EchoService {
 public:
  explicit EchoService(std::unique_ptr<net::ServerChannel> server)
      : server_(std::move(server)), thread_([this] { serve(); }) {}
  ~EchoService() {
    stop_ = true;
    thread_.join();
  }
  std::vector<net::Bytes> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  const net::ServerChannel& channel() const { return *server_; }

 private:
  void serve() {
    while (!stop_) {
      std::optional<net::Envelope> envelope = server_->recv(Millis(20));
      if (!envelope) continue;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        received_.push_back(envelope->payload);
      }
      try {
        server_->send(envelope->peer, std::move(envelope->payload));
      } catch (const net::PeerUnreachable&) {
      }
    }
  }

  std::unique_ptr<net::ServerChannel> server_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<net::Bytes> received_;
  std::thread thread_;   // last: starts after everything it uses exists
};

net::Bytes must_recv(net::ClientChannel& channel) {
  std::optional<net::Bytes> reply = channel.recv(Millis(10000));
  if (!reply) throw std::runtime_error("no reply within 10 s from " + channel.describe());
  return *reply;
}

// A refused TLS session: the client finishes its side of the TLS 1.3
// handshake first, so the server's verdict arrives as an alert on a read.
void expect_refused(net::ClientChannel& intruder) {
  intruder.send(text_bytes("let me in"));
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) intruder.recv(Millis(100));
      },
      net::TransportError);
}

class FleetNetworkTest : public ::testing::TestWithParam<FleetTransport> {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(test::scratch_dir("simulate_fleet_network"));
    pki_ = new FleetPki(issue_fleet_pki(*root_ + "/pki", {"site-a", "site-b"}, /*split_hops=*/1));
    // A site certificate from another CA; it trusts our CA, so only the
    // service's verdict can stop it.
    secure::ca_init(*root_ + "/other-ca", "other-federation");
    foreign_ = new secure::TlsIdentity(
        secure::ca_issue(*root_ + "/other-ca", secure::NodeRole::client, "site-a", *root_ + "/other-nodes").identity);
    foreign_->ca_path = pki_->ca_cert;
    foreign_->crl_path.reset();
  }
  static void TearDownTestSuite() {
    delete foreign_;
    delete pki_;
    delete root_;
  }

  static std::string* root_;
  static FleetPki* pki_;
  static secure::TlsIdentity* foreign_;
};

std::string* FleetNetworkTest::root_ = nullptr;
FleetPki* FleetNetworkTest::pki_ = nullptr;
secure::TlsIdentity* FleetNetworkTest::foreign_ = nullptr;

TEST_P(FleetNetworkTest, ASiteReachesTheAggregatorUnderItsOwnCertificate) {
  Log log;
  FleetNetwork network(GetParam(), pki_, log.sink());
  ASSERT_TRUE(network.encrypted());
  EchoService service(network.bind(kAggregatorNode, aggregator::aggregator_policy()));
  const std::string address = network.address(kAggregatorNode, service.channel());
  std::unique_ptr<net::ClientChannel> site = network.connect("site-a", address, kAggregatorNode);
  EXPECT_EQ(site->describe().rfind("tls+", 0), 0u) << site->describe();
  site->send(text_bytes("hello"));
  EXPECT_EQ(must_recv(*site), text_bytes("hello"));
  EXPECT_FALSE(log.contains("NOT encrypted")) << log.text();
}

TEST_P(FleetNetworkTest, RefusesAForeignCaAWrongRoleAndAnotherSitesIdWhileServingValidSites) {
  Log log;
  FleetNetwork network(GetParam(), pki_, log.sink());
  EchoService service(network.bind(kAggregatorNode, aggregator::aggregator_policy()));
  const std::string address = network.address(kAggregatorNode, service.channel());
  std::unique_ptr<net::ClientChannel> valid = network.connect("site-b", address, kAggregatorNode);
  valid->send(text_bytes("before"));
  EXPECT_EQ(must_recv(*valid), text_bytes("before"));

  {
    SCOPED_TRACE("a certificate from another CA");
    std::unique_ptr<net::ClientChannel> intruder = network.connect_as(*foreign_, address, kAggregatorNode);
    expect_refused(*intruder);
    EXPECT_TRUE(log.contains("unable to get local issuer certificate")) << log.text();
  }
  {
    SCOPED_TRACE("the split server's certificate: not a site");
    std::unique_ptr<net::ClientChannel> intruder =
        network.connect_as(pki_->identity(kSplitServerNode), address, kAggregatorNode);
    expect_refused(*intruder);
    EXPECT_TRUE(log.contains("role split-server of node 'split-server' may not connect here")) << log.text();
  }
  {
    SCOPED_TRACE("site-a registering as site-b");
    std::unique_ptr<net::ClientChannel> spoofer = network.connect("site-a", address, kAggregatorNode);
    spoofer->send(aggregator::pack_message(aggregator::FederationMessage::register_client,
                                           aggregator::Register{"site-b", "fp", 10}));
    const auto refusal = aggregator::unpack_message<aggregator::FederationErrorReply>(
        must_recv(*spoofer), aggregator::FederationMessage::error, 1 << 20);
    EXPECT_NE(refusal.message.find("certificate is for 'site-a'"), std::string::npos) << refusal.message;
  }

  valid->send(text_bytes("after"));
  EXPECT_EQ(must_recv(*valid), text_bytes("after"));
  const std::vector<net::Bytes> received = service.received();
  ASSERT_EQ(received.size(), 2u) << "nothing of the intruders may reach the service";
  EXPECT_EQ(received[0], text_bytes("before"));
  EXPECT_EQ(received[1], text_bytes("after"));
}

TEST_P(FleetNetworkTest, OnlyTheAggregatorClosesASplitServerRound) {
  Log log;
  FleetNetwork network(GetParam(), pki_, log.sink());
  EchoService split_server(network.bind(kSplitServerNode, split::split_server_policy()));
  const std::string address = network.address(kSplitServerNode, split_server.channel());
  const net::Bytes end_round = wire::pack(static_cast<uint16_t>(split::MessageType::end_round), split::EndRound{0, {}, ""});

  std::unique_ptr<net::ClientChannel> site = network.connect("site-a", address, kSplitServerNode);
  site->send(end_round);
  const auto refusal = wire::unpack<split::ErrorReply>(
      must_recv(*site), static_cast<uint16_t>(split::MessageType::error), 1 << 20);
  EXPECT_EQ(refusal.message, "only the aggregator may close or set a round");

  std::unique_ptr<net::ClientChannel> closer = network.connect(kAggregatorNode, address, kSplitServerNode);
  closer->send(end_round);
  EXPECT_EQ(must_recv(*closer), end_round);
  ASSERT_EQ(split_server.received().size(), 1u);
}

TEST_P(FleetNetworkTest, ASiteRefusesAServiceThatIsNotTheOneItDials) {
  Log log;
  FleetNetwork network(GetParam(), pki_, log.sink());
  EchoService split_server(network.bind(kSplitServerNode, split::split_server_policy()));
  // The split server's address, but the site expects the aggregator there.
  std::unique_ptr<net::ClientChannel> site =
      network.connect("site-a", network.address(kSplitServerNode, split_server.channel()), kAggregatorNode);
  EXPECT_THROW(site->send(text_bytes("hello")), net::TransportError);
  EXPECT_TRUE(split_server.received().empty());
}

TEST_P(FleetNetworkTest, InsecureIsPlaintextWithAWarningPerEndpoint) {
  Log log;
  FleetNetwork network(GetParam(), nullptr, log.sink());
  EXPECT_FALSE(network.encrypted());
  EchoService service(network.bind(kAggregatorNode, aggregator::aggregator_policy()));
  EXPECT_TRUE(log.contains("insecure: true: traffic on aggregator at ")) << log.text();
  EXPECT_TRUE(log.contains("is NOT encrypted or authenticated")) << log.text();
  std::unique_ptr<net::ClientChannel> site =
      network.connect("site-a", network.address(kAggregatorNode, service.channel()), kAggregatorNode);
  EXPECT_EQ(site->describe().find("tls+"), std::string::npos) << site->describe();
  site->send(text_bytes("plain"));
  EXPECT_EQ(must_recv(*site), text_bytes("plain"));
}

INSTANTIATE_TEST_SUITE_P(Transports, FleetNetworkTest, ::testing::Values(FleetTransport::inproc, FleetTransport::tcp),
                         [](const ::testing::TestParamInfo<FleetTransport>& info) {
                           return std::string(fleet_transport_name(info.param));
                         });

TEST(FleetPki, IssuesACaAndOneCertificatePerNodeWithPrivateKeys) {
  const std::string dir = test::scratch_dir("simulate_fleet_pki") + "/pki";
  const FleetPki pki = issue_fleet_pki(dir, {"site-000", "site-001", "site-002"}, /*split_hops=*/1);
  EXPECT_EQ(pki.dir, dir);
  EXPECT_TRUE(std::filesystem::exists(dir + "/ca/ca.crt"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/THROWAWAY"));
  ASSERT_EQ(pki.nodes.size(), 5u);
  for (const char* node : {"aggregator", "split-server", "site-000", "site-001", "site-002"}) {
    const secure::TlsIdentity& identity = pki.identity(node);
    EXPECT_TRUE(std::filesystem::exists(identity.cert_path)) << node;
    struct stat info {};
    ASSERT_EQ(::stat(identity.key_path.c_str(), &info), 0) << identity.key_path;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << identity.key_path;
  }
  const std::vector<secure::IndexEntry> index = secure::ca_index(dir + "/ca");
  ASSERT_EQ(index.size(), 5u);
  EXPECT_EQ(index[0].role, secure::NodeRole::aggregator);
  EXPECT_EQ(index[1].role, secure::NodeRole::split_server);
  EXPECT_EQ(index[2].role, secure::NodeRole::client);
  EXPECT_EQ(index[2].name, "site-000");
  EXPECT_THROW(pki.identity("site-999"), std::invalid_argument);

  // The next run replaces it: a new CA, not the old one.
  const std::string old_ca = secure::ca_index(dir + "/ca")[0].serial_hex;
  const FleetPki again = issue_fleet_pki(dir, {"site-000"}, /*split_hops=*/0);
  EXPECT_EQ(again.nodes.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/nodes/site-001.crt"));
  EXPECT_NE(secure::ca_index(dir + "/ca")[0].serial_hex, old_ca);
}

TEST(FleetPki, NeverDeletesADirectoryItDidNotMake) {
  const std::string dir = test::scratch_dir("simulate_fleet_pki_foreign") + "/pki";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/ca.key") << "someone's real CA key";
  EXPECT_THROW(issue_fleet_pki(dir, {"site-000"}, 1), std::runtime_error);
  EXPECT_TRUE(std::filesystem::exists(dir + "/ca.key"));
}

TEST(FleetPki, RefusesSiteIdsThatCannotNameACertificate) {
  const std::string dir = test::scratch_dir("simulate_fleet_pki_names") + "/pki";
  EXPECT_THROW(issue_fleet_pki(dir, {"site a"}, 1), std::invalid_argument);
  EXPECT_THROW(issue_fleet_pki(dir, {"aggregator"}, 1), std::invalid_argument);
  EXPECT_THROW(issue_fleet_pki(dir, {"site-0", "site-0"}, 1), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::simulate
