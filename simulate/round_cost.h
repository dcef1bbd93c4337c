// What a simulated round cost each role: the sampled sites together, the
// split server and the aggregator, each measured by its own
// metrics::CostMeter (wall time, CPU seconds and joules per phase; see
// metrics/cost_meter.h for how CPU is attributed when every role shares
// this one process), beside what the whole process spent over the round.
// Written to metrics.csv (cost_columns), metrics.jsonl ("cost") and
// summary.md (cost_table).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metrics/cost_meter.h"
#include "util/json.h"

namespace cleave::simulate {

struct RoundCost {
  metrics::RoleCost site;             // every site of the round together; its tokens: what they trained
  metrics::RoleCost split_server;     // empty without a split server
  metrics::RoleCost aggregator;
  metrics::RoleCost evaluation;       // the fleet's held-out evaluation: no role's, measured apart
  double process_cpu_seconds = 0;     // every thread of the process over the round
  std::optional<double> machine_joules;   // powercap over the round; nullopt: n/a

  // The training tokens every per-token figure divides by: the target
  // positions the sites trained on (train_tokens, steps x batch x seq_len).
  int64_t tokens() const { return site.tokens; }
  // What the roles and the evaluation were charged; the process's rest is
  // idle polling, thread starts, site setup outside a round and the like.
  double attributed_cpu_seconds() const;
  RoundCost& operator+=(const RoundCost& other);
};

// metrics.csv's cost columns, after the others: per role CPU seconds, CPU
// microseconds per token, joules and millijoules per token (empty: n/a).
const std::vector<std::string>& cost_columns();
// The cells of those columns, each after a comma; all empty without a cost (baselines).
std::string cost_cells(const std::optional<RoundCost>& cost);
// metrics.jsonl's "cost": per role totals, per token and per phase.
json::Value cost_json(const RoundCost& cost);

// summary.md's "Cost per token by role" section for a run's summed rounds.
// `energy_status`: the powercap meter's (metrics::PowercapMeter::status()).
std::string cost_table(const RoundCost& total, const std::string& energy_status, int64_t workers);

}  // namespace cleave::simulate
