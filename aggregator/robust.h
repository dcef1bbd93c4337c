// Byzantine-robust aggregation: the new global is the global plus the
// coordinate-wise median or trimmed mean of the client deltas, each delta
// optionally clipped to a global L2 norm first so no client can dominate
// by scale.
#pragma once

#include "aggregator/strategy.h"

namespace cleave::aggregator {

class RobustAggregate : public Strategy {
 public:
  enum class Rule { Median, TrimmedMean };

  RobustAggregate(Rule rule, const RobustOptions& options = {}, int local_steps = 0);
  std::string name() const override;  // "median" or "trimmed_mean"
  bool needs_each_update() const override { return true; }
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;

 private:
  Rule rule_;
  RobustOptions options_;
};

}  // namespace cleave::aggregator
