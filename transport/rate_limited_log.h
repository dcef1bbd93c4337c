// A log that anyone on the network can trigger (a bad frame, a failed
// handshake, a reply that cannot be delivered) must not let them fill the
// disk: RateLimitedLog passes at most `burst` lines per `window` and counts
// the rest. The count is reported by the first line let through after the
// window, or by flush() when the service is idle, as "(N more <what>
// suppressed in the last W s)". Every line goes to the log at one level
// (warning unless said otherwise).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "util/log.h"

namespace cleave::net {

class RateLimitedLog {
 public:
  using Clock = std::chrono::steady_clock;

  // `what` names the lines in the suppression note ("dropped TLS sessions").
  RateLimitedLog(Log log, std::string what, int burst = 10,
                 std::chrono::milliseconds window = std::chrono::seconds(10), LogLevel level = LogLevel::warning);

  void operator()(const std::string& line) { log(line, Clock::now()); }
  void log(const std::string& line, Clock::time_point now);
  // Reports lines suppressed in a window that has ended; call it when idle.
  void flush(Clock::time_point now = Clock::now());

  uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  void open_window_if_over(Clock::time_point now);

  Log log_;
  LogLevel level_;
  std::string what_;
  int burst_;
  std::chrono::milliseconds window_;
  Clock::time_point window_start_{};
  bool started_ = false;
  int passed_in_window_ = 0;
  uint64_t suppressed_in_window_ = 0;
  uint64_t suppressed_total_ = 0;
};

}  // namespace cleave::net
