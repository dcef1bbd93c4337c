// The split server's Prometheus series (metrics/registry.h), and the byte
// counts every service's channel exports.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "metrics/registry.h"

namespace cleave::wire {
struct ByteCounter;
}

namespace cleave::split {

// cleave_channel_bytes_total{channel, direction="in"|"out", message}, read
// from a service's wire::ByteCounter (which must outlive the collection) at
// every scrape.
metrics::Collection collect_channel_bytes(metrics::Registry& registry, const std::string& channel,
                                          const wire::ByteCounter& bytes);
// The same for a process with several channels (a site: split and aggregator),
// one family: channel name -> its counter.
metrics::Collection collect_channel_bytes(metrics::Registry& registry,
                                          const std::vector<std::pair<std::string, const wire::ByteCounter*>>& channels);

class SplitServerMetrics {
 public:
  // `next_hop_bytes`: multi-hop, the channel to the next split server
  // (channel="next_hop"); null for the last hop.
  SplitServerMetrics(metrics::Registry& registry, const wire::ByteCounter& bytes,
                     const wire::ByteCounter* next_hop_bytes = nullptr);

  // One forward or backward request answered (`kind`: "forward" | "backward").
  void step(const char* kind, double seconds);
  // After each request: the round, the clients with state, and the split
  // inference sessions open with the KV-cache bytes they reserve.
  void publish(uint32_t round, size_t clients, size_t sessions, int64_t kv_bytes);

 private:
  metrics::Counter& forward_steps_;
  metrics::Counter& backward_steps_;
  metrics::Histogram& forward_seconds_;
  metrics::Histogram& backward_seconds_;
  metrics::Gauge& round_;
  metrics::Gauge& clients_;
  metrics::Gauge& sessions_;
  metrics::Gauge& kv_bytes_;
  std::vector<metrics::Collection> collections_;   // last: released first
};

}  // namespace cleave::split
