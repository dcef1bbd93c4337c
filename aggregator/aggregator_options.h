// Options of the aggregator service (config section `aggregator:`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aggregator/client_sampling.h"
#include "aggregator/dp_options.h"
#include "aggregator/secure_aggregation_options.h"
#include "aggregator/strategy.h"

namespace cleave::aggregator {

// What happens when a round's deadline passes with fewer than min_clients
// updates: wait another round_deadline_ms (up to max_extensions times, then
// fail), or fail at once. Failing stops the run: sites are told it finished
// with an error and the last completed round's checkpoint stays for a restart.
enum class OnDeadline { extend, fail };
OnDeadline parse_on_deadline(const std::string& name);   // "extend" | "fail"
const char* on_deadline_name(OnDeadline value);

struct AggregatorOptions {
  int64_t rounds = 10;                 // rounds to run, > 0
  int64_t clients_per_round = 0;       // clients sampled per round; 0: use fraction_per_round
  double fraction_per_round = 1.0;     // share of the registered clients, in (0, 1]
  int64_t min_clients = 1;             // updates needed to close a round, >= 1
  int64_t min_registered = 0;          // registrations awaited before round 0; 0: max(min_clients, clients_per_round)
  int64_t max_registered = 100000;     // refuse registrations beyond this
  int64_t round_deadline_ms = 600000;  // from the start of a round
  OnDeadline on_deadline = OnDeadline::extend;
  int64_t max_extensions = 3;          // extend: how many times before failing
  uint64_t seed = 0;                   // client sampling
  ClientSampling sampling = ClientSampling::random;   // passes: every client once per pass (pass_sample)
  double client_lr = 0;                // sent to sites; 0: each site's own learning rate
  // < 1: client_lr decays across the rounds by a cosine, from client_lr at
  // round 0 to client_lr x client_lr_min_ratio at round rounds - 1, as one
  // centralized schedule decays across its epochs (needs client_lr > 0); each
  // site's own schedule still runs within its round. 1: the same every round.
  double client_lr_min_ratio = 1.0;
  int64_t poll_interval_ms = 1000;     // how long sites wait before polling again
  std::string checkpoint_dir;          // "" : no checkpoints (and no resume)
  int64_t keep_checkpoints = 3;        // rounds whose adapters stay in checkpoint_dir, >= 1
  // Split servers whose SFL-V1 rounds close with the aggregator's (EndRound
  // after every round). Empty: federation without split, or SFL-V2.
  std::vector<std::string> split_servers;
  int64_t split_timeout_ms = 30000;    // per EndRound attempt
  int split_max_attempts = 5;
  int64_t split_backoff_ms = 200;      // doubled after each failed attempt, capped at 5 s
  size_t max_message_bytes = 256u << 20;
  StrategyOptions strategy;
  // Client-level DP (aggregator/dp_fedavg.h): Poisson sampling at
  // fraction_per_round (clients_per_round must be 0), rounds close with
  // whichever sampled sites report (min_clients must be 1).
  DpOptions dp;
  // Secure aggregation (secagg/): the aggregator learns only the sum of a
  // round's updates. Strategies must work on that sum (fedavg, fedprox,
  // fedavgm, fedadam, fedyogi); min_clients is replaced by the protocol's threshold.
  SecureAggregationOptions secure_aggregation;

  // Throws std::invalid_argument naming the field ("aggregator.min_clients ...").
  void validate() const;
  // The learning rate sent to the sites in `round` (0-based): client_lr under its decay.
  double client_lr_at(int64_t round) const;
  // Registrations awaited before the first round.
  int64_t registrations_to_start() const;
};

}  // namespace cleave::aggregator
