// A simulated fleet in one process: the aggregator service and (split mode)
// a split server, each serving on its own thread, and N registered sites
// sharing one frozen base model. A site is only an id and data indices until
// it is sampled: then a worker instantiates its adapters, train step and
// FederatedClient, runs the round through the same role code as a
// deployment (poll, assignment, local training through the split server,
// update), and drops it. Memory grows with the sites trained at once, not N.
//
// Every channel is mutual TLS 1.3, as in a deployment: the run makes a
// throw-away CA in <output_dir>/pki (simulate/fleet_pki.h) with a certificate
// for the aggregator, the split server and each site (named by its id), and
// the services apply the deployment's peer policies. Plaintext only with
// config.insecure.
//
// The round loop is the aggregator's: the fleet only registers the sites,
// hands each open round's sampled sites to the worker pool, waits for the
// service to close the round, and measures (bytes per channel, wall time per
// phase, held-out perplexity of the global adapters).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aggregator/global_adapters.h"
#include "lora/adapter_set.h"
#include "simulate/fleet_data.h"
#include "simulate/round_metrics.h"
#include "simulate/simulation_config.h"
#include "util/log.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::simulate {

class FleetRanks;

struct FleetResult {
  std::vector<RoundMetrics> rounds;
  aggregator::GlobalAdapters client_adapters;   // the aggregator's global adapters after the last round
  lora::AdapterSet server_adapters;             // split: the split server's averaged adapters; else empty
  lora::AdapterSet adapters;                    // both, every block: what evaluation runs
  int64_t registered = 0;
  int64_t sites_instantiated = 0;               // site instances made over the run
  int64_t peak_live_sites = 0;                  // most site instances alive at once
  int processes = 1;                            // mpirun: the ranks; the two counts above are rank 0's
  std::string pki_dir;                          // the run's throw-away CA and certificates; "" : plaintext
  double pki_seconds = 0;                       // making the CA and issuing every certificate
  double registration_seconds = 0;              // registering every site (with TLS: a handshake each)
  // federation.stop_patience: the round after which the validation
  // perplexity had converged (ConvergenceCheck) and the run stopped; 0: it ran
  // every round.
  int64_t converged_round = 0;
  bool failed = false;
  std::string failure;
};

class Fleet {
 public:
  using RoundObserver = std::function<void(const RoundMetrics&)>;

  // `data` and `model` must outlive the fleet. Throws std::invalid_argument
  // for an invalid configuration (e.g. cut_layer beyond the model's blocks).
  Fleet(std::shared_ptr<const LlamaModel> model, const FleetData& data, SimulationConfig config,
        Log log = Log::silent());

  // Runs every round; `on_round` sees each round's metrics as it closes.
  // With `ranks` of more than one process (mpirun; simulate/fleet_ranks.h)
  // this is rank 0: the services, evaluation and its share of the sites;
  // the other ranks run serve_rank().
  FleetResult run(const RoundObserver& on_round = {}, FleetRanks* ranks = nullptr);
  // A rank other than 0: trains its share of each round's sampled sites
  // against rank 0's services until rank 0's run ends.
  void serve_rank(FleetRanks& ranks);

 private:
  std::shared_ptr<const LlamaModel> model_;
  const FleetData& data_;
  SimulationConfig config_;
  Log log_;
};

}  // namespace cleave::simulate
