// Baselines from a fleet's configuration, so one command compares split
// federated training with:
//  - centralized: one client holding every site's training examples, the
//    whole model local, no split, the same total optimizer steps as the
//    fleet's sites together (rounds x sites per round x local steps; under
//    federation.local_epochs the sites' own step counts, so the same epochs)
//    with one learning-rate schedule, evaluated after each round's worth;
//  - local_only: each site alone on its own examples for rounds x its local
//    steps (as if sampled in every round), scored on its own held-out split
//    and on the global held-out set; reported as the mean over sites;
// Under federation.stop_patience both stop by the fleet's rule
// (ConvergenceCheck): centralized on the validation set, each local-only
// site on its own validation split.
//  - fedavg_nosplit: the fleet with mode nosplit (sites hold the whole model
//    and its adapters; FedAvg through the same aggregator) — see Fleet.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "lora/adapter_set.h"
#include "simulate/fleet_data.h"
#include "simulate/round_metrics.h"
#include "simulate/simulation_config.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::simulate {

struct CentralizedResult {
  std::vector<RoundMetrics> rounds;   // one row per fleet-round's worth of steps
  lora::AdapterSet adapters;
  int64_t steps = 0;                  // planned (federation.rounds' worth)
  int64_t steps_taken = 0;            // fewer when it converged first
  int64_t converged_round = 0;        // in fleet-rounds' worth of steps; 0: ran every step
};

// Trains, writes <dir>/metrics.csv, metrics.jsonl and adapter.gguf.
CentralizedResult run_centralized(std::shared_ptr<const LlamaModel> model, const FleetData& data,
                                  const SimulationConfig& config, const std::string& dir, std::ostream& out);

struct LocalOnlySite {
  std::string id;
  int64_t train_examples = 0;
  int64_t steps = 0;                  // taken (fewer than planned when it converged first)
  double own_perplexity = 0;          // on its own held-out split; 0 when it has none
  double global_perplexity = 0;       // on the global held-out set; 0 when it had too little data to train
};

struct LocalOnlyResult {
  std::vector<LocalOnlySite> sites;
  int64_t steps_per_site = 0;
  double mean_own_perplexity() const;     // over sites with a held-out split
  double mean_global_perplexity() const;
  double seconds = 0;
};

// Trains every site alone; writes <dir>/sites.csv (one row per site) and
// each site's adapters as <dir>/<site id>.gguf.
LocalOnlyResult run_local_only(std::shared_ptr<const LlamaModel> model, const FleetData& data,
                               const SimulationConfig& config, const std::string& dir, std::ostream& out);

// Mean perplexity of `adapters` over the sites' own held-out splits (every
// site when there are at most `max_sites`, else the first max_sites).
double mean_site_perplexity(const LlamaModel& model, const lora::AdapterSet& adapters, const FleetData& data,
                            const SimulationConfig& config, size_t max_sites = 64);

}  // namespace cleave::simulate
