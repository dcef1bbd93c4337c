#include "transport/request_retry.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

namespace cleave::net {
namespace {

constexpr int64_t kStopPollMs = 100;

bool stopped(const std::atomic<bool>* stop) { return stop && stop->load(); }

}  // namespace

int64_t backoff_after(const RetryOptions& options, int failures) {
  int64_t backoff = options.backoff_ms;
  for (int i = 1; i < failures && backoff < options.max_backoff_ms; ++i) backoff *= 2;
  backoff = std::min(backoff, options.max_backoff_ms);
  if (backoff <= 0 || options.jitter <= 0) return backoff;
  thread_local std::minstd_rand generator{std::random_device{}()};
  std::uniform_real_distribution<double> factor(1.0 - options.jitter, 1.0);
  return static_cast<int64_t>(static_cast<double>(backoff) * factor(generator));
}

void RetryOptions::validate(const std::string& prefix) const {
  if (timeout_ms < 1) throw std::invalid_argument(prefix + "timeout_ms must be >= 1, got " + std::to_string(timeout_ms));
  if (max_attempts < 1) {
    throw std::invalid_argument(prefix + "max_attempts must be >= 1, got " + std::to_string(max_attempts));
  }
  if (backoff_ms < 0 || max_backoff_ms < backoff_ms) {
    throw std::invalid_argument(prefix + "backoff_ms must be in [0, max_backoff_ms], got " +
                                std::to_string(backoff_ms) + " and " + std::to_string(max_backoff_ms));
  }
  if (!(jitter >= 0 && jitter < 1)) throw std::invalid_argument(prefix + "jitter must be in [0, 1)");
}

bool wait_unless_stopped(int64_t ms, const std::atomic<bool>* stop) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stopped(stop)) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(kStopPollMs)));
  }
  return false;
}

std::optional<Bytes> request_with_retry(ClientChannel& channel, const Bytes& request, const RetryOptions& options,
                                        const std::function<ReplyVerdict(const Bytes& reply)>& accept,
                                        RetryFailure* failure, const RetryLog& on_retry) {
  std::string problem = "no reply";
  // With a stop flag, waits are cut into slices so that a signal is seen promptly.
  const int64_t slice = options.stop ? kStopPollMs : options.timeout_ms;
  for (int attempt = 1; attempt <= options.max_attempts; ++attempt) {
    if (stopped(options.stop)) throw RequestStopped("stopped while waiting for " + channel.describe());
    try {
      channel.send(request);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
      problem = "no reply within " + std::to_string(options.timeout_ms) + " ms";
      while (true) {
        if (stopped(options.stop)) throw RequestStopped("stopped while waiting for " + channel.describe());
        const auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::optional<Bytes> reply = channel.recv(std::min(left, Millis(slice)));
        if (!reply) continue;
        if (accept(*reply) == ReplyVerdict::take) return reply;
      }
    } catch (const TransportError& e) {
      problem = e.what();
    }
    if (failure) *failure = RetryFailure{attempt, problem};
    if (attempt == options.max_attempts) break;
    const int64_t wait = backoff_after(options, attempt);
    if (on_retry) on_retry(attempt, problem, wait);
    if (!wait_unless_stopped(wait, options.stop)) {
      throw RequestStopped("stopped while waiting for " + channel.describe());
    }
    try {
      channel.reconnect();   // a fresh connection; replies to the old one are dropped
    } catch (const TransportError& e) {
      problem = e.what();
    }
  }
  return std::nullopt;
}

}  // namespace cleave::net
