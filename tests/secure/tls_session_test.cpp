// TlsSession on its own, two sessions wired back to back in memory: message
// reassembly for every way records can be spread over frames (in place in
// the received frame, or grown in a separate buffer).
#include "secure/tls_session.h"

#include <gtest/gtest.h>

#include "tests/secure/tls_fixture.h"

namespace cleave::secure {
namespace {

using namespace test_support;

class TlsSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string root = test::scratch_dir("secure_tls_session_pki");
    ca_init(root + "/ca", "session-federation");
    server_id_ = new TlsIdentity(ca_issue(root + "/ca", NodeRole::split_server, "split-0",
                                          root + "/nodes").identity);
    client_id_ = new TlsIdentity(
        ca_issue(root + "/ca", NodeRole::client, "site-a", root + "/nodes").identity);
  }
  static void TearDownTestSuite() {
    delete server_id_;
    delete client_id_;
  }

  void SetUp() override {
    SecureChannelOptions server = server_options(*server_id_, log_);
    server.max_message_bytes = 8 << 20;
    server_context_ = std::make_unique<TlsContext>(TlsContext::Side::server, server);
    SecureChannelOptions client = client_options(*client_id_, log_);
    client_context_ = std::make_unique<TlsContext>(TlsContext::Side::client, client);
    server_ = std::make_unique<TlsSession>(*server_context_, "server");
    client_ = std::make_unique<TlsSession>(*client_context_, "client");
    for (int flight = 0; flight < 4 && !(client_->established() && server_->established());
         ++flight) {
      if (auto frame = client_->take_outgoing_frame()) server_->receive_frame(std::move(*frame));
      if (auto frame = server_->take_outgoing_frame()) client_->receive_frame(std::move(*frame));
    }
    ASSERT_TRUE(client_->established()) << client_->failure();
    ASSERT_TRUE(server_->established()) << server_->failure();
  }

  // The client's pending records cut at `cuts` (offsets into the records,
  // ascending), each piece sent to the server as its own frame.
  void deliver_in_pieces(const std::vector<size_t>& cuts) {
    Bytes frame = *client_->take_outgoing_frame();
    const size_t records = frame.size() - kFrameHeaderBytes;
    size_t from = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(records);
    for (size_t to : ends) {
      ASSERT_LE(to, records);
      Bytes piece(frame.begin(), frame.begin() + kFrameHeaderBytes);
      piece.insert(piece.end(), frame.begin() + static_cast<std::ptrdiff_t>(kFrameHeaderBytes + from),
                   frame.begin() + static_cast<std::ptrdiff_t>(kFrameHeaderBytes + to));
      server_->receive_frame(std::move(piece));
      ASSERT_NE(server_->state(), TlsSession::State::failed) << server_->failure();
      from = to;
    }
  }

  std::vector<Bytes> take_inbox() {
    std::vector<Bytes> messages(server_->inbox().begin(), server_->inbox().end());
    server_->inbox().clear();
    return messages;
  }

  static TlsIdentity* server_id_;
  static TlsIdentity* client_id_;
  LogCapture log_;
  std::unique_ptr<TlsContext> server_context_, client_context_;
  std::unique_ptr<TlsSession> server_, client_;
};

TlsIdentity* TlsSessionTest::server_id_ = nullptr;
TlsIdentity* TlsSessionTest::client_id_ = nullptr;

TEST_F(TlsSessionTest, MessagesOfEverySizeArriveIntactOnePerFrame) {
  // Below, at and above the in-place threshold (64 KiB) and the record size.
  const std::vector<size_t> sizes = {0,         1,           16384 - 8, 16384, 65535,
                                     65536,     65536 + 1,   1 << 20,   (3 << 20) + 7};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Bytes message = random_bytes(sizes[i], static_cast<uint32_t>(i));
    client_->send_message(message);
    server_->receive_frame(*client_->take_outgoing_frame());
    const std::vector<Bytes> inbox = take_inbox();
    ASSERT_EQ(inbox.size(), 1u) << "size " << sizes[i];
    EXPECT_EQ(inbox[0], message) << "size " << sizes[i];
  }
}

TEST_F(TlsSessionTest, SeveralLargeMessagesInOneFrameKeepTheirOrder) {
  const std::vector<Bytes> sent = {random_bytes(1 << 20, 1), random_bytes(5, 2),
                                   random_bytes(200000, 3), random_bytes(70000, 4)};
  for (const Bytes& message : sent) client_->send_message(message);
  server_->receive_frame(*client_->take_outgoing_frame());
  EXPECT_EQ(take_inbox(), sent);
}

TEST_F(TlsSessionTest, ALargeMessageSplitAcrossFramesArrivesIntact) {
  const Bytes message = random_bytes(1 << 20, 5);
  // Ciphertext: an 8-byte prefix record, then 64 full records of 16 KiB.
  const size_t records = (1 << 20) + 8 + 65 * 22;
  struct Case {
    const char* what;
    std::vector<size_t> cuts;
  };
  const std::vector<Case> cases = {
      // The first frame holds at least as many bytes as the message, but
      // not all of it: the message starts in place, then moves out.
      {"last 100 bytes in a second frame", {records - 100}},
      {"first frame too short to start in place", {records / 2}},
      {"cut inside the length prefix record", {3, records - 5000}},
      {"many small pieces", {29, 1000, 17000, 40000, 300000, 700000, records - 1}},
  };
  for (const Case& c : cases) {
    client_->send_message(message);
    deliver_in_pieces(c.cuts);
    const std::vector<Bytes> inbox = take_inbox();
    ASSERT_EQ(inbox.size(), 1u) << c.what;
    EXPECT_EQ(inbox[0], message) << c.what;
  }
}

TEST_F(TlsSessionTest, LargeMessagesAfterALeftoverRecordArriveIntact) {
  // The first frame ends inside a record, so the next frame is read from the
  // carried-over bytes, where no message can be decrypted in place.
  const Bytes first = random_bytes(100000, 6), second = random_bytes(300000, 7);
  client_->send_message(first);
  client_->send_message(second);
  deliver_in_pieces({50000});
  EXPECT_EQ(take_inbox(), (std::vector<Bytes>{first, second}));
}

TEST_F(TlsSessionTest, AnnouncedButMissingBytesDoNotCompleteAMessage) {
  const Bytes message = random_bytes(4 << 20, 8);
  client_->send_message(message);
  Bytes frame = *client_->take_outgoing_frame();
  Bytes head(frame.begin(), frame.begin() + 100000);
  server_->receive_frame(std::move(head));
  EXPECT_TRUE(server_->inbox().empty());
  EXPECT_TRUE(server_->established());
}

}  // namespace
}  // namespace cleave::secure
