#include "transport/rate_limited_log.h"

#include <stdexcept>
#include <utility>

namespace cleave::net {

RateLimitedLog::RateLimitedLog(Log log, std::string what, int burst, std::chrono::milliseconds window,
                               LogLevel level)
    : log_(std::move(log)), level_(level), what_(std::move(what)), burst_(burst), window_(window) {
  if (burst_ < 1) throw std::invalid_argument("RateLimitedLog burst must be >= 1, got " + std::to_string(burst_));
  if (window_.count() <= 0) throw std::invalid_argument("RateLimitedLog window must be positive");
}

void RateLimitedLog::open_window_if_over(Clock::time_point now) {
  if (started_ && now - window_start_ < window_) return;
  if (suppressed_in_window_ > 0) {
    const auto ms = window_.count();
    const std::string span = ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
    log_(level_, "(" + std::to_string(suppressed_in_window_) + " more " + what_ + " suppressed in the last " + span + ")");
  }
  started_ = true;
  window_start_ = now;
  passed_in_window_ = 0;
  suppressed_in_window_ = 0;
}

void RateLimitedLog::log(const std::string& line, Clock::time_point now) {
  open_window_if_over(now);
  if (passed_in_window_ < burst_) {
    ++passed_in_window_;
    log_(level_, line);
    return;
  }
  ++suppressed_in_window_;
  ++suppressed_total_;
}

void RateLimitedLog::flush(Clock::time_point now) {
  if (suppressed_in_window_ > 0) open_window_if_over(now);
}

}  // namespace cleave::net
