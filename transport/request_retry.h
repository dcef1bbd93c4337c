// One request to a service, resent until a wanted reply arrives: the loop
// every role that asks a service for something runs (a site asking the
// aggregator, a site's split steps, the aggregator closing a split server's
// round). Each attempt sends the request and waits up to timeout_ms for a
// reply that `accept` takes; a silent attempt, or a transport error, is
// followed by a backoff (doubled each time, capped, with jitter so that sites
// cut off together do not come back together) and a reconnect. The stop flag
// is looked at before every attempt and at least every 100 ms of any wait, so
// a signal ends the loop within a fraction of a second.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "transport/channel.h"

namespace cleave::net {

struct RetryOptions {
  int64_t timeout_ms = 10000;               // per attempt
  int max_attempts = 8;                     // then the request fails
  int64_t backoff_ms = 200;                 // before the second attempt; doubled after each failure
  int64_t max_backoff_ms = 5000;
  double jitter = 0.25;                     // each backoff is drawn from [1 - jitter, 1] x its value
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler: give up at once

  void validate(const std::string& prefix) const;   // throws std::invalid_argument naming prefix + field
};

// The stop flag was set while a request waited or retried.
class RequestStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What `accept` says of a reply: take it (the request is done), or skip it (a
// late reply to an earlier request; keep waiting). It may also throw, e.g. on
// an error reply no retry can fix.
enum class ReplyVerdict { take, skip };

struct RetryFailure {
  int attempts = 0;
  std::string problem;                       // the last attempt's: "no reply within N ms" or a transport error
};

// Called before each retry with the attempt that failed, why, and the backoff.
using RetryLog = std::function<void(int attempt, const std::string& problem, int64_t backoff_ms)>;

// The reply `accept` took, or the failure after max_attempts. Throws
// RequestStopped when `options.stop` is set, and whatever `accept` throws.
std::optional<Bytes> request_with_retry(ClientChannel& channel, const Bytes& request, const RetryOptions& options,
                                        const std::function<ReplyVerdict(const Bytes& reply)>& accept,
                                        RetryFailure* failure = nullptr, const RetryLog& on_retry = {});

// The wait before trying again after `failures` (>= 1) failures in a row:
// backoff_ms doubled for each failure after the first, capped at
// max_backoff_ms, drawn from [1 - jitter, 1] x that value.
int64_t backoff_after(const RetryOptions& options, int failures);

// Sleeps `ms`, waking at least every 100 ms to look at `stop`; returns false
// when stopped.
bool wait_unless_stopped(int64_t ms, const std::atomic<bool>* stop);

}  // namespace cleave::net
