#include "split/split_metrics.h"

#include <cstring>

#include "wire/frame.h"

namespace cleave::split {
namespace {

const char* kStepsHelp = "Split steps the server answered, by kind (forward, backward).";
const char* kStepHelp = "Time the split server took to answer a step, by kind (forward, backward).";

}  // namespace

metrics::Collection collect_channel_bytes(metrics::Registry& registry, const std::string& channel,
                                          const wire::ByteCounter& bytes) {
  return collect_channel_bytes(registry, {{channel, &bytes}});
}

metrics::Collection collect_channel_bytes(
    metrics::Registry& registry, const std::vector<std::pair<std::string, const wire::ByteCounter*>>& channels) {
  return registry.collect(
      "cleave_channel_bytes_total", "Bytes of messages on this service's channels, by direction and message type.",
      metrics::Type::counter, [channels] {
        std::vector<metrics::Sample> samples;
        for (const auto& [channel, bytes] : channels) {
          for (const wire::ByteCounter::Row& row : bytes->rows()) {
            samples.push_back({{{"channel", channel}, {"direction", "in"}, {"message", row.message_type}},
                               static_cast<double>(row.received_bytes)});
            samples.push_back({{{"channel", channel}, {"direction", "out"}, {"message", row.message_type}},
                               static_cast<double>(row.sent_bytes)});
          }
        }
        return samples;
      });
}

SplitServerMetrics::SplitServerMetrics(metrics::Registry& registry, const wire::ByteCounter& bytes,
                                       const wire::ByteCounter* next_hop_bytes)
    : forward_steps_(registry.counter("cleave_split_steps_total", kStepsHelp, {{"kind", "forward"}})),
      backward_steps_(registry.counter("cleave_split_steps_total", kStepsHelp, {{"kind", "backward"}})),
      forward_seconds_(registry.histogram("cleave_split_step_duration_seconds", kStepHelp,
                                          metrics::duration_buckets(), {{"kind", "forward"}})),
      backward_seconds_(registry.histogram("cleave_split_step_duration_seconds", kStepHelp,
                                           metrics::duration_buckets(), {{"kind", "backward"}})),
      round_(registry.gauge("cleave_round", "The split server's current round.")),
      clients_(registry.gauge("cleave_split_clients", "Split clients with state on the server (said hello).")),
      sessions_(registry.gauge("cleave_generation_sessions", "Split inference sessions open.")),
      kv_bytes_(registry.gauge("cleave_generation_kv_cache_bytes",
                               "Bytes the open split inference sessions reserve for their KV caches.")) {
  std::vector<std::pair<std::string, const wire::ByteCounter*>> channels = {{"split", &bytes}};
  if (next_hop_bytes) channels.emplace_back("next_hop", next_hop_bytes);
  collections_.push_back(collect_channel_bytes(registry, channels));
}

void SplitServerMetrics::step(const char* kind, double seconds) {
  const bool forward = std::strcmp(kind, "forward") == 0;
  (forward ? forward_steps_ : backward_steps_).inc();
  (forward ? forward_seconds_ : backward_seconds_).observe(seconds);
}

void SplitServerMetrics::publish(uint32_t round, size_t clients, size_t sessions, int64_t kv_bytes) {
  round_.set(round);
  clients_.set(static_cast<double>(clients));
  sessions_.set(static_cast<double>(sessions));
  kv_bytes_.set(static_cast<double>(kv_bytes));
}

}  // namespace cleave::split
