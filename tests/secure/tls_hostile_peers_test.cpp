// Peers that cannot authenticate, over real ZeroMQ sockets on loopback: one
// that asks for handshakes and never reads the replies, and floods of
// half-open handshakes. Neither may stall the server, evict an authenticated
// session or keep memory after it leaves.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "secure/tls_channel.h"
#include "secure/tls_session.h"
#include "tests/secure/tls_fixture.h"
#include "tests/support/process_memory.h"
#include "tests/support/sanitizer.h"
#include "transport/zmq_channel.h"

namespace cleave::secure {
namespace {

using namespace test_support;
using Clock = std::chrono::steady_clock;

// Generous: only reached when something is broken.
constexpr auto kDeadline = std::chrono::seconds(20);

// Polls `condition` (each poll is a short wait for the server thread, not a
// sleep that stands in for synchronisation) until it holds or kDeadline passes.
template <typename Condition>
bool eventually(Condition condition) {
  const auto end = Clock::now() + kDeadline;
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::yield();
  }
  return condition();
}

// A genuine ClientHello frame, as a site's first message would be.
net::Bytes client_hello(const Pki& pki, LogCapture& log) {
  TlsContext context(TlsContext::Side::client, client_options(pki.site_b, log));
  TlsSession session(context, "hostile");
  return *session.take_outgoing_frame();
}

// A ZeroMQ peer that takes at most one message in and a few KiB of socket
// buffer: it never reads what the server sends.
std::unique_ptr<zmq::socket_t> silent_peer(zmq::context_t& context, const std::string& endpoint) {
  auto socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
  socket->set(zmq::sockopt::linger, 0);
  socket->set(zmq::sockopt::rcvhwm, 1);
  socket->set(zmq::sockopt::rcvbuf, 4096);
  socket->connect(endpoint);
  return socket;
}

class TlsHostilePeers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new Pki(Pki::create(test::scratch_dir("secure_tls_hostile"))); }
  static void TearDownTestSuite() { delete pki_; }
  static Pki* pki_;
};
Pki* TlsHostilePeers::pki_ = nullptr;

// Bug 2 of the reliability issue: a peer that sent ClientHellos and never
// read the replies blocked the service's only thread in zmq_send for good.
TEST_F(TlsHostilePeers, APeerThatNeverReadsIsDroppedAndEveryoneElseIsServed) {
  LogCapture server_log, client_log;
  net::ChannelOptions inner;
  inner.peer_queue_messages = 4;
  inner.socket_send_buffer_bytes = 4096;
  EchoService service(std::make_unique<SecureServerChannel>(net::zmq_bind("tcp://127.0.0.1:0", inner),
                                                            server_options(pki_->server, server_log)));

  SecureClientChannel site(net::zmq_connect(service.endpoint()), client_options(pki_->site_a, client_log));
  expect_echo(site, text_bytes("before"));

  zmq::context_t context;
  auto hostile = silent_peer(context, service.endpoint());
  const net::Bytes hello = client_hello(*pki_, client_log);
  // Sent from a thread of its own: if the server stalled, this side would
  // block too, and the assertions below would report it.
  std::thread flood([&] {
    for (int i = 0; i < 3000; ++i) {
      if (!hostile->send(zmq::buffer(hello), zmq::send_flags::dontwait)) break;   // the server stopped reading
    }
  });
  const bool dropped = eventually([&] { return service.peers_not_reading() > 0; });
  flood.join();
  ASSERT_TRUE(dropped) << "the server never found the peer not reading:\n" << server_log.all();

  // The service is not stuck: the established site and a brand-new one are served.
  expect_echo(site, text_bytes("after"));
  SecureClientChannel newcomer(net::zmq_connect(service.endpoint()), client_options(pki_->site_b, client_log));
  expect_echo(newcomer, text_bytes("new handshake"));
  EXPECT_TRUE(server_log.contains("not reading")) << server_log.all();
  // The log is rate-limited: thousands of failed handshakes, a handful of lines.
  EXPECT_LE(server_log.count("dropped TLS session"), 20u) << server_log.all();
}

// Half-open handshakes from many peers: the server holds at most
// max_handshakes of them, never evicts an authenticated session for them,
// drops each after handshake_timeout, and gives the memory back.
TEST_F(TlsHostilePeers, AFloodOfHalfOpenHandshakesIsBoundedTimedOutAndForgotten) {
  LogCapture server_log, client_log;
  SecureChannelOptions options = server_options(pki_->server, server_log);
  options.max_handshakes = 16;
  options.max_sessions = 32;
  options.handshake_timeout = Millis(300);
  EchoService service(std::make_unique<SecureServerChannel>(net::zmq_bind("tcp://127.0.0.1:0"), options));

  SecureClientChannel site(net::zmq_connect(service.endpoint()), client_options(pki_->site_a, client_log));
  expect_echo(site, text_bytes("before"));
  const net::Bytes hello = client_hello(*pki_, client_log);

  auto flood = [&](int peers, int at_once) {
    for (int done = 0; done < peers; done += at_once) {
      // A context per wave: closing it waits until its sockets (and their
      // file descriptors) are gone.
      zmq::context_t context;
      std::vector<std::unique_ptr<zmq::socket_t>> wave;
      for (int i = 0; i < at_once; ++i) {
        wave.push_back(silent_peer(context, service.endpoint()));
        wave.back()->send(zmq::buffer(hello), zmq::send_flags::none);
      }
      // Each wave stays until the server has seen it (its handshakes fill the limit).
      ASSERT_TRUE(eventually([&] { return service.handshakes() >= 16; }));
    }
  };

  flood(200, 40);   // warm-up: the allocator's and ZeroMQ's pools reach their working size
  ASSERT_TRUE(eventually([&] { return service.handshakes() == 0; })) << service.handshakes() << " left";
  const int64_t before_kib = test::resident_kib();
  flood(1500, 40);
  EXPECT_LE(service.most_handshakes(), 16u);
  // The authenticated site kept its session throughout.
  expect_echo(site, text_bytes("during"));
  EXPECT_FALSE(server_log.contains("site-a")) << server_log.all();

  // Every half-open handshake times out and its memory goes back.
  ASSERT_TRUE(eventually([&] { return service.handshakes() == 0 && service.sessions() == 1; }))
      << service.handshakes() << " handshakes and " << service.sessions() << " sessions left";
  const int64_t after_kib = test::resident_kib();
  RecordProperty("resident_kib_before", static_cast<int>(before_kib));
  RecordProperty("resident_kib_after", static_cast<int>(after_kib));
  if (!test::kUnderSanitizer) {
    EXPECT_LE(after_kib - before_kib, 16 * 1024) << "resident memory grew from " << before_kib << " KiB to "
                                                 << after_kib << " KiB over 1,500 half-open handshakes";
  }
  expect_echo(site, text_bytes("after"));
}

// When the session table is full, a newcomer's handshake evicts another
// handshake, never an authenticated site (it used to evict the least
// recently active session, whoever it was).
TEST_F(TlsHostilePeers, AFullSessionTableEvictsHandshakesBeforeSites) {
  LogCapture server_log, client_log;
  SecureChannelOptions options = server_options(pki_->server, server_log);
  options.max_sessions = 4;
  EchoService service(std::make_unique<SecureServerChannel>(net::zmq_bind("tcp://127.0.0.1:0"), options));
  SecureClientChannel site(net::zmq_connect(service.endpoint()), client_options(pki_->site_a, client_log));
  expect_echo(site, text_bytes("before"));

  const net::Bytes hello = client_hello(*pki_, client_log);
  zmq::context_t context;
  std::vector<std::unique_ptr<zmq::socket_t>> peers;
  for (int i = 0; i < 20; ++i) {
    peers.push_back(silent_peer(context, service.endpoint()));
    peers.back()->send(zmq::buffer(hello), zmq::send_flags::none);
  }
  ASSERT_TRUE(eventually([&] { return server_log.contains("the max_sessions limit"); })) << server_log.all();
  EXPECT_LE(service.most_handshakes(), 3u);
  expect_echo(site, text_bytes("still mine"));
  EXPECT_FALSE(server_log.contains("site-a")) << server_log.all();
}

}  // namespace
}  // namespace cleave::secure
