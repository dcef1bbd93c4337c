// The aggregator's Prometheus series (metrics/registry.h): the service
// records into them where things happen (aggregator_service.cpp), under its
// own lock; a scrape reads them without taking it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metrics/registry.h"

namespace cleave::wire {
struct ByteCounter;
}

namespace cleave::aggregator {

enum class RunState;

// Why an update was refused: the `reason` label of
// cleave_updates_rejected_total, a fixed set (the log line has the detail).
enum class RejectReason { not_registered, late, no_open_round, not_sampled, secure_round, duplicate, after_invalid,
                          invalid };
const char* reject_reason_label(RejectReason reason);

class AggregatorMetrics {
 public:
  // `bytes` (the service's) is read at every scrape and must outlive this.
  AggregatorMetrics(metrics::Registry& registry, const wire::ByteCounter& bytes);

  // The service's state after each request and tick.
  void publish(RunState state, uint32_t round, int64_t registered, int64_t sampled, int64_t reported);
  void round_completed(double duration_seconds, std::optional<double> dp_epsilon);
  void checkpoint_written();
  void rejected(RejectReason reason);

 private:
  metrics::Counter& rejected_counter(RejectReason reason);

  metrics::Registry& registry_;
  metrics::Counter& rounds_completed_;
  metrics::Gauge& round_;
  std::vector<std::pair<RunState, metrics::Gauge*>> phases_;
  metrics::Histogram& round_duration_;
  metrics::Gauge& registered_;
  metrics::Gauge& sampled_;
  metrics::Gauge& reported_;
  std::atomic<int64_t> checkpoint_unix_ms_{0};   // 0: none written by this process yet
  // Last: released first, so no scrape reads the members above once they go.
  std::vector<metrics::Collection> collections_;
};

}  // namespace cleave::aggregator
