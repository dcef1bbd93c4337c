// A whole `cleave simulate` run into its run directory:
//   metrics.csv, metrics.jsonl     per round (see round_metrics.h)
//   adapters_client.gguf           the aggregator's global client-side adapters
//   adapters_server.gguf           the split server's averaged adapters (split mode)
//   adapter.gguf                   both together: every block, for eval/generate
//   plot.png                       perplexity, train loss and cumulative bytes per round
//   fleet.log                      the roles' log lines
//   baselines/<name>/...           each baseline's metrics and adapters
//   summary.md                     final held-out perplexity and bytes of every run
//   pki/                           the run's throw-away CA and certificates (not when insecure)
// (config.resolved.yaml is written by the CLI, which owns the YAML.)
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "simulate/baselines.h"
#include "simulate/fleet.h"
#include "simulate/png_image.h"

namespace cleave::simulate {

class FleetRanks;

struct SimulationResult {
  FleetResult fleet;
  double fleet_site_perplexity = 0;               // final adapters, mean over the sites' held-out splits
  double seconds = 0;
  std::optional<CentralizedResult> centralized;
  double centralized_site_perplexity = 0;
  double centralized_seconds = 0;
  std::optional<LocalOnlyResult> local_only;
  std::optional<FleetResult> fedavg_nosplit;
  double fedavg_nosplit_site_perplexity = 0;
  double fedavg_nosplit_seconds = 0;
  std::string summary;                            // summary.md's text
};

// Runs the fleet, then each of config.fleet.baselines, writing the files
// above into config.output_dir; progress lines go to `out`. Throws on a
// failed run (the message says which round and why). With `ranks` (mpirun,
// simulate/fleet_ranks.h) this is rank 0 and the fleet's sites are spread
// over the ranks (the baselines run here alone).
SimulationResult run_simulation(const SimulationConfig& config, std::shared_ptr<const LlamaModel> model,
                                const FleetData& data, std::ostream& out, FleetRanks* ranks = nullptr);

// The plot of a fleet run (and of any baselines given) as plot.png's image.
Image simulation_plot(const SimulationResult& result, const std::string& title);

}  // namespace cleave::simulate
