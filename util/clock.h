// Time as a service sees it (the aggregator's round deadlines, the split
// server's idle generation sessions), so what depends on it can be tested by
// moving a manual clock instead of sleeping. Header-only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cleave {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;   // monotonic milliseconds from any origin
};

class SteadyClock : public Clock {
 public:
  int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// Moves only when told to; safe to advance from another thread.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(); }
  void advance(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace cleave
