// The secure channel over real ZeroMQ sockets on loopback.
#include <gtest/gtest.h>

#include "secure/tls_channel.h"
#include "tests/secure/tls_fixture.h"
#include "transport/zmq_channel.h"

namespace cleave::secure {
namespace {

using namespace test_support;

TEST(TlsZmq, RoundTripsAndRefusesAWrongRoleOverTcpLoopback) {
  const Pki pki = Pki::create(test::scratch_dir("secure_tls_zmq"));
  LogCapture server_log, client_log;
  EchoService service(std::make_unique<SecureServerChannel>(
      net::zmq_bind("tcp://127.0.0.1:0"), server_options(pki.server, server_log)));
  const std::string endpoint = service.endpoint();
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
  ASSERT_NE(endpoint, "tcp://127.0.0.1:0");

  SecureClientChannel client(net::zmq_connect(endpoint), client_options(pki.site_a, client_log));
  EXPECT_EQ(client.describe(), "tls+" + endpoint);
  expect_echo(client, random_bytes(4096, 11));
  expect_echo(client, random_bytes(1 << 20, 12));

  SecureClientChannel intruder(net::zmq_connect(endpoint),
                               client_options(pki.aggregator, client_log));
  intruder.send(text_bytes("let me in"));
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) intruder.recv(Millis(100));
      },
      SecureChannelError);
  EXPECT_TRUE(server_log.contains("role aggregator of node 'agg-0' may not connect here"))
      << server_log.all();

  expect_echo(client, text_bytes("still served"));
  const auto received = service.received();
  ASSERT_EQ(received.size(), 3u);
  for (const auto& r : received) EXPECT_EQ(r.identity->node_id, "site-a");
}

}  // namespace
}  // namespace cleave::secure
