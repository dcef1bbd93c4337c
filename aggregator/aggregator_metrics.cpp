#include "aggregator/aggregator_metrics.h"

#include <chrono>

#include "aggregator/aggregator_service.h"
#include "split/split_metrics.h"

namespace cleave::aggregator {
namespace {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const char* reject_reason_label(RejectReason reason) {
  switch (reason) {
    case RejectReason::not_registered: return "not_registered";
    case RejectReason::late: return "late";
    case RejectReason::no_open_round: return "no_open_round";
    case RejectReason::not_sampled: return "not_sampled";
    case RejectReason::secure_round: return "secure_round";
    case RejectReason::duplicate: return "duplicate";
    case RejectReason::after_invalid: return "after_invalid";
    case RejectReason::invalid: return "invalid";
  }
  return "invalid";
}

AggregatorMetrics::AggregatorMetrics(metrics::Registry& registry, const wire::ByteCounter& bytes)
    : registry_(registry),
      rounds_completed_(registry.counter("cleave_rounds_completed_total",
                                         "Federated rounds closed by this process (cleave_round says where a resumed run is).")),
      round_(registry.gauge("cleave_round", "The current round: the open one, or the next to start.")),
      round_duration_(registry.histogram("cleave_round_duration_seconds",
                                         "Time from a round's start to its close.", metrics::duration_buckets())),
      registered_(registry.gauge("cleave_sites_registered", "Sites registered with the aggregator.")),
      sampled_(registry.gauge("cleave_sites_sampled", "Sites sampled in the open round (0 between rounds).")),
      reported_(registry.gauge("cleave_sites_reported", "Sites whose update the open round accepted.")) {
  for (RunState state : {RunState::waiting_for_clients, RunState::in_round, RunState::finished, RunState::failed}) {
    phases_.emplace_back(state, &registry.gauge("cleave_round_phase", "1 for the aggregator's current phase, else 0.",
                                                {{"phase", run_state_name(state)}}));
  }
  for (RejectReason reason : {RejectReason::not_registered, RejectReason::late, RejectReason::no_open_round,
                              RejectReason::not_sampled, RejectReason::secure_round, RejectReason::duplicate,
                              RejectReason::after_invalid, RejectReason::invalid}) {
    rejected_counter(reason);   // every reason present from the start, at 0
  }
  collections_.push_back(split::collect_channel_bytes(registry, "federation", bytes));
  collections_.push_back(registry.collect(
      "cleave_checkpoint_age_seconds", "Seconds since this process last wrote the aggregator checkpoint.",
      metrics::Type::gauge, [this] {
        const int64_t written = checkpoint_unix_ms_.load();
        if (written == 0) return std::vector<metrics::Sample>{};
        return std::vector<metrics::Sample>{{{}, (unix_ms() - written) / 1000.0}};
      }));
}

void AggregatorMetrics::publish(RunState state, uint32_t round, int64_t registered, int64_t sampled,
                                int64_t reported) {
  round_.set(round);
  for (auto& [phase, gauge] : phases_) gauge->set(phase == state ? 1 : 0);
  registered_.set(static_cast<double>(registered));
  sampled_.set(static_cast<double>(sampled));
  reported_.set(static_cast<double>(reported));
}

void AggregatorMetrics::round_completed(double duration_seconds, std::optional<double> dp_epsilon) {
  rounds_completed_.inc();
  round_duration_.observe(duration_seconds);
  if (dp_epsilon) {
    registry_.gauge("cleave_dp_epsilon", "Differential privacy: epsilon spent so far, at aggregator.dp.delta.")
        .set(*dp_epsilon);
  }
}

void AggregatorMetrics::checkpoint_written() { checkpoint_unix_ms_.store(unix_ms()); }

void AggregatorMetrics::rejected(RejectReason reason) { rejected_counter(reason).inc(); }

metrics::Counter& AggregatorMetrics::rejected_counter(RejectReason reason) {
  return registry_.counter("cleave_updates_rejected_total", "Updates the aggregator refused, by reason.",
                    {{"reason", reject_reason_label(reason)}});
}

}  // namespace cleave::aggregator
