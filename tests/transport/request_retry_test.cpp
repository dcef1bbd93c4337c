// net::request_with_retry, the one request-with-retry loop of every role:
// transport errors and silence are retried with backoff and a reconnect,
// late replies are skipped, and the stop flag ends any wait at once.
#include "transport/request_retry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>

namespace cleave::net {
namespace {

// A channel whose sends fail `failures` times, then answers each request
// with `replies` in order (nothing once they run out).
class ScriptedChannel : public ClientChannel {
 public:
  ScriptedChannel(int failures, std::deque<Bytes> replies) : failures_(failures), replies_(std::move(replies)) {}
  void send(Bytes) override {
    ++sends;
    if (failures_ > 0) {
      --failures_;
      throw TransportError("connection reset");
    }
    if (!replies_.empty()) {
      pending_.push_back(replies_.front());
      replies_.pop_front();
    }
  }
  std::optional<Bytes> recv(Millis) override {
    if (pending_.empty()) return std::nullopt;
    Bytes reply = pending_.front();
    pending_.pop_front();
    return reply;
  }
  void reconnect() override { ++reconnects; }
  std::string describe() const override { return "scripted"; }

  int sends = 0, reconnects = 0;

 private:
  int failures_;
  std::deque<Bytes> replies_, pending_;
};

ReplyVerdict take_ok(const Bytes& reply) { return reply == Bytes{'o', 'k'} ? ReplyVerdict::take : ReplyVerdict::skip; }

RetryOptions quick() {
  RetryOptions options;
  options.timeout_ms = 20;
  options.max_attempts = 4;
  options.backoff_ms = 1;
  options.max_backoff_ms = 4;
  return options;
}

TEST(RequestRetry, ATransportErrorIsRetriedWithBackoffAndAReconnect) {
  ScriptedChannel channel(2, {Bytes{'o', 'k'}});
  std::vector<int64_t> backoffs;
  RetryFailure failure;
  const auto reply = request_with_retry(channel, Bytes{'q'}, quick(), take_ok, &failure,
                                        [&](int, const std::string& problem, int64_t backoff) {
                                          EXPECT_EQ(problem, "connection reset");
                                          backoffs.push_back(backoff);
                                        });
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(channel.sends, 3);
  EXPECT_EQ(channel.reconnects, 2);
  ASSERT_EQ(backoffs.size(), 2u);
  EXPECT_LE(backoffs[0], 1);
  EXPECT_LE(backoffs[1], 2);   // doubled (with jitter: drawn from [0.75, 1] x 2)
}

TEST(RequestRetry, LateRepliesAreSkippedAndSilenceFailsAfterMaxAttempts) {
  ScriptedChannel late(0, {Bytes{'l', 'a', 't', 'e'}, Bytes{'o', 'k'}});
  EXPECT_TRUE(request_with_retry(late, Bytes{'q'}, quick(), take_ok).has_value());
  EXPECT_EQ(late.sends, 2) << "the late reply does not count as an answer";

  ScriptedChannel silent(0, {});
  RetryFailure failure;
  EXPECT_FALSE(request_with_retry(silent, Bytes{'q'}, quick(), take_ok, &failure).has_value());
  EXPECT_EQ(silent.sends, 4);
  EXPECT_EQ(failure.attempts, 4);
  EXPECT_EQ(failure.problem, "no reply within 20 ms");
}

TEST(RequestRetry, TheStopFlagEndsAWaitAndABackoffAtOnce) {
  std::atomic<bool> stop{false};
  RetryOptions options = quick();
  options.timeout_ms = 60000;   // without the flag: a minute of waiting
  options.backoff_ms = 60000;
  options.max_backoff_ms = 60000;
  options.stop = &stop;
  stop = true;
  ScriptedChannel silent(0, {});
  EXPECT_THROW(request_with_retry(silent, Bytes{'q'}, options, take_ok), RequestStopped);
  EXPECT_EQ(silent.sends, 0);

  // Set during a retry: the backoff that follows is cut short.
  stop = false;
  options.timeout_ms = 20;
  ScriptedChannel failing(10, {});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(request_with_retry(failing, Bytes{'q'}, options, take_ok, nullptr,
                                  [&](int, const std::string&, int64_t) { stop = true; }),
               RequestStopped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(failing.sends, 1);
}

TEST(RequestRetry, AnErrorThrownByAcceptEndsTheRequest) {
  ScriptedChannel channel(0, {Bytes{'n', 'o'}});
  EXPECT_THROW(request_with_retry(channel, Bytes{'q'}, quick(),
                                  [](const Bytes&) -> ReplyVerdict { throw std::runtime_error("refused"); }),
               std::runtime_error);
  EXPECT_EQ(channel.sends, 1);
}

TEST(RequestRetry, BadOptionsNameTheField) {
  RetryOptions options;
  options.max_attempts = 0;
  try {
    options.validate("client.");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("client.max_attempts must be >= 1, got 0"), std::string::npos);
  }
}

}  // namespace
}  // namespace cleave::net
