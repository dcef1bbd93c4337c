// Mutually authenticated TLS 1.3 over in-process channels.
#include "secure/tls_channel.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "tests/secure/tls_fixture.h"
#include "transport/inproc_channel.h"

namespace cleave::secure {
namespace {

using namespace test_support;

class TlsChannelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new Pki(Pki::create(test::scratch_dir("secure_tls_pki"))); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  std::unique_ptr<SecureServerChannel> make_server(const TlsIdentity& identity) {
    SecureChannelOptions options = server_options(identity, server_log_);
    options.on_handshake_refused = [this](const std::string& reason) {
      std::lock_guard<std::mutex> lock(refused_mutex_);
      refused_.push_back(reason);
    };
    return std::make_unique<SecureServerChannel>(network_.bind("split"), options);
  }
  // The reasons the server gave on_handshake_refused, in order.
  std::vector<std::string> refused() {
    std::lock_guard<std::mutex> lock(refused_mutex_);
    return refused_;
  }
  std::unique_ptr<SecureClientChannel> make_client(const TlsIdentity& identity) {
    return std::make_unique<SecureClientChannel>(network_.connect("split"),
                                                 client_options(identity, client_log_));
  }

  static Pki* pki_;
  net::InprocNetwork network_;
  LogCapture server_log_, client_log_;
  std::mutex refused_mutex_;
  std::vector<std::string> refused_;
};

Pki* TlsChannelTest::pki_ = nullptr;

TEST_F(TlsChannelTest, HandshakeAuthenticatesBothEndsAndMessagesRoundTrip) {
  EchoService service(make_server(pki_->server));
  auto client = make_client(pki_->site_a);
  client->handshake(Millis(10000));
  ASSERT_TRUE(client->server_identity().has_value());
  EXPECT_EQ(client->server_identity()->node_id, "split-0");
  EXPECT_EQ(client->server_identity()->role, NodeRole::split_server);

  expect_echo(*client, text_bytes("hello split server"));
  expect_echo(*client, net::Bytes{});
  expect_echo(*client, random_bytes(1 << 20, 7));

  const auto received = service.received();
  ASSERT_EQ(received.size(), 3u);
  for (const auto& r : received) {
    ASSERT_TRUE(r.identity.has_value());
    EXPECT_EQ(r.identity->node_id, "site-a");
    EXPECT_EQ(r.identity->role, NodeRole::client);
  }
  EXPECT_EQ(received[2].payload.size(), size_t{1} << 20);
  EXPECT_EQ(server_log_.count("dropped"), 0u) << server_log_.all();
}

TEST_F(TlsChannelTest, RefusesBadCertificatesWhileServingAValidClient) {
  struct Case {
    const char* what;
    TlsIdentity identity;
    std::string server_reason;
    std::string metric_reason;   // what on_handshake_refused is told
  };
  const std::vector<Case> cases = {
      {"foreign CA", pki_->foreign, "unable to get local issuer certificate", "untrusted"},
      {"expired", pki_->expired, "certificate has expired", "expired"},
      {"revoked", pki_->revoked, "certificate revoked", "revoked"},
      {"wrong role", pki_->aggregator, "role aggregator of node 'agg-0' may not connect here", "role"},
  };
  EchoService service(make_server(pki_->server));
  auto valid = make_client(pki_->site_a);
  expect_echo(*valid, text_bytes("before"));

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto intruder = make_client(c.identity);
    // TLS 1.3 clients finish their side first; the server's verdict arrives
    // as an alert on the next read.
    intruder->send(text_bytes(std::string("let me in: ") + c.what));
    EXPECT_THROW(
        {
          for (int i = 0; i < 100; ++i) intruder->recv(Millis(100));
        },
        SecureChannelError);
    EXPECT_TRUE(server_log_.contains(c.server_reason)) << server_log_.all();
    expect_echo(*valid, text_bytes(std::string("still served after ") + c.what));
    ASSERT_FALSE(refused().empty());
    EXPECT_EQ(refused().back(), c.metric_reason);
  }
  EXPECT_EQ(refused().size(), cases.size()) << "one refusal per intruder, none for the valid client";

  for (const auto& r : service.received()) {
    ASSERT_TRUE(r.identity.has_value());
    EXPECT_EQ(r.identity->node_id, "site-a");
  }
  EXPECT_EQ(service.received().size(), 1 + cases.size());
}

TEST_F(TlsChannelTest, ClientRefusesAServerWithTheWrongRoleOrName) {
  {
    SecureChannelOptions options = server_options(pki_->fake_server, server_log_);
    EchoService service(std::make_unique<SecureServerChannel>(network_.bind("split"), options));
    auto client = make_client(pki_->site_a);
    EXPECT_THROW(client->send(text_bytes("secret")), SecureChannelError);
    EXPECT_TRUE(client_log_.contains("role client of node 'fake-server' may not connect here"))
        << client_log_.all();
    EXPECT_TRUE(service.received().empty());
  }
  {
    EchoService service(make_server(pki_->server));
    SecureChannelOptions options = client_options(pki_->site_a, client_log_);
    options.expected_peer_name = "split-9";
    SecureClientChannel client(network_.connect("split"), options);
    EXPECT_THROW(client.send(text_bytes("secret")), SecureChannelError);
    EXPECT_TRUE(client_log_.contains("node is 'split-0', expected 'split-9'")) << client_log_.all();
    EXPECT_TRUE(service.received().empty());
  }
}

TEST_F(TlsChannelTest, TamperedCiphertextDropsOnlyThatSession) {
  EchoService service(make_server(pki_->server));
  auto tap = std::make_shared<TapState>();
  SecureClientChannel victim(std::make_unique<TapClientChannel>(network_.connect("split"), tap),
                             client_options(pki_->site_a, client_log_));
  auto bystander = make_client(pki_->site_b);
  expect_echo(victim, text_bytes("first"));
  expect_echo(*bystander, text_bytes("bystander 1"));

  tap->corrupt_next = true;
  victim.send(text_bytes("amount=100"));
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) victim.recv(Millis(100));
      },
      SecureChannelError);
  EXPECT_TRUE(server_log_.contains("('site-a', client): TLS record from the peer failed"))
      << server_log_.all();
  EXPECT_TRUE(server_log_.contains("bad record mac")) << server_log_.all();

  // The other session never noticed; the victim re-handshakes on its next send.
  expect_echo(*bystander, text_bytes("bystander 2"));
  expect_echo(victim, text_bytes("after reconnect"));

  std::vector<std::string> payloads;
  for (const auto& r : service.received()) payloads.emplace_back(r.payload.begin(), r.payload.end());
  EXPECT_EQ(payloads, (std::vector<std::string>{"first", "bystander 1", "bystander 2",
                                                "after reconnect"}));
}

TEST_F(TlsChannelTest, RecordedFramesReplayedIntoANewSessionAreRejected) {
  EchoService service(make_server(pki_->server));
  auto tap = std::make_shared<TapState>();
  SecureClientChannel recorded(std::make_unique<TapClientChannel>(network_.connect("split"), tap),
                               client_options(pki_->site_a, client_log_));
  expect_echo(recorded, text_bytes("pay site-a 100"));
  const std::vector<net::Bytes> frames = tap->sent;  // ClientHello, client Finished, message
  ASSERT_EQ(frames.size(), 3u);
  const size_t drops_before = server_log_.count("dropped TLS session");

  // An attacker replays the whole conversation on a connection of its own.
  auto attacker = network_.connect("split");
  for (const net::Bytes& frame : frames) attacker->send(frame);

  // Frames are served in order, so once the bystander's echo is back the
  // replay has been handled.
  auto bystander = make_client(pki_->site_b);
  expect_echo(*bystander, text_bytes("marker"));
  size_t pays = 0;
  for (const auto& r : service.received()) {
    pays += std::string(r.payload.begin(), r.payload.end()) == "pay site-a 100";
  }
  EXPECT_EQ(pays, 1u) << "the replayed message was delivered again";
  // The server answered the replayed ClientHello with fresh keys, so the old
  // Finished cannot authenticate; the replayed record then meets no session.
  EXPECT_GE(server_log_.count("dropped TLS session"), drops_before + 2) << server_log_.all();
  EXPECT_TRUE(server_log_.contains("bad record mac")) << server_log_.all();
  expect_echo(recorded, text_bytes("original session unaffected"));
}

TEST_F(TlsChannelTest, AFrameReplayedWithinItsSessionDropsIt) {
  EchoService service(make_server(pki_->server));
  auto tap = std::make_shared<TapState>();
  SecureClientChannel client(std::make_unique<TapClientChannel>(network_.connect("split"), tap),
                             client_options(pki_->site_a, client_log_));
  expect_echo(client, text_bytes("pay 100"));
  tap->inner->send(tap->sent.back());  // same connection, same session, old sequence number
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) client.recv(Millis(100));
      },
      SecureChannelError);
  EXPECT_EQ(service.received().size(), 1u);
  EXPECT_TRUE(server_log_.contains("bad record mac")) << server_log_.all();
}

TEST_F(TlsChannelTest, ReconnectRunsAFreshHandshakeUnderANewPeerId) {
  EchoService service(make_server(pki_->server));
  auto client = make_client(pki_->site_a);
  expect_echo(*client, text_bytes("one"));
  client->reconnect();
  EXPECT_FALSE(client->handshake_complete());
  expect_echo(*client, text_bytes("two"));
  const auto received = service.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_NE(received[0].peer, received[1].peer);
  EXPECT_EQ(received[1].identity->node_id, "site-a");
  EXPECT_EQ(server_log_.count("dropped"), 0u) << server_log_.all();
}

// Driven from one thread: the server and a non-blocking client take turns,
// so each step happens at a known point.
std::optional<net::Envelope> pump_to_server(SecureServerChannel& server,
                                            SecureClientChannel& client) {
  for (int turn = 0; turn < 20; ++turn) {
    if (auto envelope = server.recv(Millis(0))) return envelope;
    if (client.recv(Millis(0))) ADD_FAILURE() << "unexpected message for the client";
  }
  return std::nullopt;
}

TEST_F(TlsChannelTest, RevocationEndsLiveSessionsAndRefusesNewOnes) {
  const Pki pki = Pki::create(test::scratch_dir("secure_tls_live_revocation"));
  SecureServerChannel server(network_.bind("split"), server_options(pki.server, server_log_));
  SecureChannelOptions options = client_options(pki.site_a, client_log_);
  options.blocking_handshake = false;
  SecureClientChannel client(network_.connect("split"), options);

  client.send(text_bytes("queued before the handshake"));
  auto first = pump_to_server(server, client);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(std::string(first->payload.begin(), first->payload.end()), "queued before the handshake");
  ASSERT_TRUE(server.peer_identity(first->peer).has_value());

  ca_revoke(pki.ca_dir, pki.site_a.cert_path);
  EXPECT_FALSE(server.recv(Millis(0)).has_value());  // notices the new CRL
  EXPECT_TRUE(server_log_.contains("now revoked by the CRL")) << server_log_.all();
  EXPECT_EQ(server.session_count(), 0u);
  EXPECT_FALSE(server.peer_identity(first->peer).has_value());
  EXPECT_THROW(client.recv(Millis(0)), SecureChannelError);  // close_notify
  EXPECT_TRUE(client_log_.contains("the server closed the TLS session")) << client_log_.all();

  client.send(text_bytes("try again"));
  EXPECT_FALSE(server.recv(Millis(0)).has_value());  // ClientHello
  EXPECT_FALSE(server.recv(Millis(0)).has_value());
  EXPECT_FALSE(client.handshake_complete());
  client.recv(Millis(0));  // server's flight: client finishes its side
  EXPECT_FALSE(server.recv(Millis(0)).has_value());  // client certificate: revoked
  EXPECT_TRUE(server_log_.contains("certificate revoked")) << server_log_.all();
  EXPECT_THROW(client.recv(Millis(0)), SecureChannelError);
}

TEST_F(TlsChannelTest, AClientThatGoesAwayEndsItsServerSession) {
  SecureServerChannel server(network_.bind("split"), server_options(pki_->server, server_log_));
  SecureChannelOptions options = client_options(pki_->site_a, client_log_);
  options.blocking_handshake = false;
  auto client = std::make_unique<SecureClientChannel>(network_.connect("split"), options);
  client->send(text_bytes("hello"));
  ASSERT_TRUE(pump_to_server(server, *client).has_value());
  EXPECT_EQ(server.session_count(), 1u);

  client.reset();  // close_notify
  EXPECT_FALSE(server.recv(Millis(0)).has_value());
  EXPECT_EQ(server.session_count(), 0u);
  EXPECT_EQ(server_log_.count("dropped"), 0u) << server_log_.all();
}

TEST_F(TlsChannelTest, PlaintextPeerIsDroppedWithAHint) {
  EchoService service(make_server(pki_->server));
  auto plain = network_.connect("split");
  plain->send(text_bytes("hello in the clear"));
  auto client = make_client(pki_->site_a);
  expect_echo(*client, text_bytes("marker"));
  EXPECT_TRUE(server_log_.contains("is the peer running with insecure: true?")) << server_log_.all();
  EXPECT_EQ(service.received().size(), 1u);
  EXPECT_EQ(refused(), std::vector<std::string>{"not_tls"});
}

TEST_F(TlsChannelTest, OversizedAnnouncementDropsTheSession) {
  SecureChannelOptions options = server_options(pki_->server, server_log_);
  options.max_message_bytes = 1024;
  EchoService service(std::make_unique<SecureServerChannel>(network_.bind("split"), options));
  auto client = make_client(pki_->site_a);
  expect_echo(*client, random_bytes(1024, 1));
  client->send(random_bytes(1025, 2));
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) client->recv(Millis(100));
      },
      SecureChannelError);
  EXPECT_TRUE(server_log_.contains("1025 bytes, above the limit of 1024")) << server_log_.all();
  EXPECT_EQ(service.received().size(), 1u);
}

TEST_F(TlsChannelTest, HandshakeTimesOutWhenTheServerIsSilent) {
  auto silent = network_.bind("split");  // plaintext server that never answers
  SecureChannelOptions options = client_options(pki_->site_a, client_log_);
  options.handshake_timeout = Millis(50);
  SecureClientChannel client(network_.connect("split"), options);
  try {
    client.send(text_bytes("anyone?"));
    FAIL() << "send() returned without a handshake";
  } catch (const SecureChannelError& error) {
    EXPECT_NE(std::string(error.what()).find("did not complete within 50 ms"), std::string::npos)
        << error.what();
  }
  const auto hello = silent->recv(Millis(0));
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(std::string(hello->payload.begin(), hello->payload.begin() + 4), "CLTS");
}

TEST_F(TlsChannelTest, SendToAnUnknownPeerIsUnreachable) {
  SecureServerChannel server(network_.bind("split"), server_options(pki_->server, server_log_));
  EXPECT_THROW(server.send("nobody", text_bytes("x")), net::PeerUnreachable);
}

TEST(TlsOptions, RejectMissingFilesAndEmptyRoles) {
  LogCapture log;
  SecureChannelOptions options;
  options.identity = {"/nonexistent/a.crt", "/nonexistent/a.key", "/nonexistent/ca.crt", {}};
  options.allowed_peer_roles = {NodeRole::client};
  EXPECT_THROW(options.validate(), std::invalid_argument);
  const std::string root = test::scratch_dir("secure_tls_options");
  ca_init(root + "/ca", "ca");
  options.identity = ca_issue(root + "/ca", NodeRole::client, "n", root + "/n").identity;
  EXPECT_NO_THROW(options.validate());
  options.allowed_peer_roles.clear();
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

TEST(TlsOptions, InsecureWarningNamesTheEndpoint) {
  EXPECT_EQ(insecure_warning("tcp://0.0.0.0:5555"),
            "insecure: true: traffic on tcp://0.0.0.0:5555 is NOT encrypted or authenticated");
  LogCapture log;
  warn_insecure("tcp://h:1", log.sink());
  EXPECT_TRUE(log.contains("traffic on tcp://h:1 is NOT encrypted"));
}

}  // namespace
}  // namespace cleave::secure
