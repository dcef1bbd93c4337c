#include "aggregator/robust.h"

#include "aggregator/aggregation.h"
#include "aggregator/fedavg.h"

namespace cleave::aggregator {

RobustAggregate::RobustAggregate(Rule rule, const RobustOptions& options, int local_steps)
    : Strategy(ClientConfig{0.0, local_steps}), rule_(rule), options_(options) {
  options_.validate();
}

std::string RobustAggregate::name() const { return rule_ == Rule::Median ? "median" : "trimmed_mean"; }

NamedTensors RobustAggregate::aggregate(int round, const NamedTensors& global,
                                        const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  std::vector<ClientUpdate> clipped = updates;  // shares tensors; clipping replaces, never writes into them
  if (options_.clip_norm > 0.0) {
    for (ClientUpdate& update : clipped) update.delta = clip_by_norm(update.delta, options_.clip_norm).delta;
  }
  const NamedTensors delta =
      rule_ == Rule::Median ? coordinate_median(clipped) : trimmed_mean(clipped, options_.trim_fraction);
  return apply_delta(global, delta);
}

}  // namespace cleave::aggregator
