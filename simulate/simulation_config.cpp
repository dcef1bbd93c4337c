#include "simulate/simulation_config.h"

#include <stdexcept>

#include "aggregator/aggregator_options.h"
#include "simulate/fleet_data.h"

namespace cleave::simulate {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace

FleetMode parse_fleet_mode(const std::string& name) {
  if (name == "split") return FleetMode::split;
  if (name == "nosplit") return FleetMode::nosplit;
  throw std::invalid_argument("federation.mode '" + name + "': expected split or nosplit");
}

const char* fleet_mode_name(FleetMode mode) { return mode == FleetMode::split ? "split" : "nosplit"; }

FleetTransport parse_fleet_transport(const std::string& name) {
  if (name == "inproc") return FleetTransport::inproc;
  if (name == "tcp") return FleetTransport::tcp;
  throw std::invalid_argument("federation.transport '" + name + "': expected inproc or tcp");
}

const char* fleet_transport_name(FleetTransport transport) {
  return transport == FleetTransport::inproc ? "inproc" : "tcp";
}

const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> kNames = {"centralized", "local_only", "fedavg_nosplit"};
  return kNames;
}

Baseline parse_baseline(const std::string& name) {
  if (name == "centralized") return Baseline::centralized;
  if (name == "local_only") return Baseline::local_only;
  if (name == "fedavg_nosplit") return Baseline::fedavg_nosplit;
  throw std::invalid_argument("federation.baselines: unknown baseline '" + name +
                              "' (expected centralized, local_only or fedavg_nosplit)");
}

const char* baseline_name(Baseline baseline) {
  switch (baseline) {
    case Baseline::centralized: return "centralized";
    case Baseline::local_only: return "local_only";
    case Baseline::fedavg_nosplit: return "fedavg_nosplit";
  }
  return "unknown";
}

void FleetOptions::validate() const {
  require(clients >= 0, "federation.clients must be >= 0 (0: one per source file, natural partition only)");
  require(clients > 0 || partition == data::PartitionKind::natural,
          "federation.clients must be > 0 unless federation.partition is natural");
  require(alpha > 0, "federation.alpha must be > 0");
  require(!label_field.empty(), "federation.label_field must name a JSONL field or be \"source\"");
  for (double share : shares) require(share > 0, "federation.shares must all be > 0");
  require(client_eval_fraction >= 0 && client_eval_fraction < 1, "federation.client_eval_fraction must be in [0, 1)");
  require(client_eval_batches >= 0, "federation.client_eval_batches must be >= 0 (0: all)");
  require(data_fraction > 0 && data_fraction <= 1, "federation.data_fraction must be in (0, 1], got " +
                                                       std::to_string(data_fraction));
  require(local_epochs >= 0, "federation.local_epochs must be >= 0 (0: train.steps local steps per round)");
  require(validation_fraction >= 0 && validation_fraction < 1, "federation.validation_fraction must be in [0, 1)");
  require(stop_patience >= 0, "federation.stop_patience must be >= 0 (0: run every round)");
  require(stop_min_improvement >= 0 && stop_min_improvement < 1,
          "federation.stop_min_improvement must be in [0, 1) (a relative improvement)");
  require(stop_patience == 0 || validation_fraction > 0,
          "federation.stop_patience needs a validation set to watch: set federation.validation_fraction "
          "(e.g. 0.05); stopping on the held-out set would tune on the test data");
  require(rounds > 0, "federation.rounds must be > 0");
  require(clients_per_round >= 0, "federation.clients_per_round must be >= 0 (0: every site)");
  require(clients == 0 || clients_per_round <= clients,
          "federation.clients_per_round (" + std::to_string(clients_per_round) + ") exceeds federation.clients (" +
              std::to_string(clients) + ")");
  require(sampling == aggregator::ClientSampling::random || !dp.enabled,
          "federation.sampling: passes cannot be combined with federation.dp: client-level DP samples sites by "
          "Poisson, which is what its accountant assumes (set sampling: random or turn dp off)");
  require(cut_layer >= 1, "federation.cut_layer must be >= 1 (the sites run blocks [0, cut_layer)), got " +
                              std::to_string(cut_layer));
  require(top_cut == 0 || top_cut > cut_layer,
          "federation.top_cut must be above federation.cut_layer (" + std::to_string(cut_layer) +
              "; 0: the last block), got " + std::to_string(top_cut));
  for (int64_t rank : site_ranks) require(rank >= 1, "federation.site_ranks must all be >= 1");
  if (!split_chain.empty()) {
    require(mode == FleetMode::split, "federation.split_chain needs federation.mode split");
    require(split_chain.front() == cut_layer,
            "federation.split_chain starts where the sites hand over, federation.cut_layer (" +
                std::to_string(cut_layer) + "), not at " + std::to_string(split_chain.front()));
    for (size_t k = 1; k < split_chain.size(); ++k) {
      require(split_chain[k] > split_chain[k - 1], "federation.split_chain must increase: each hop starts above the "
                                                   "one before it");
    }
    require(top_cut == 0 || split_chain.back() < top_cut,
            "federation.split_chain's last hop must start below federation.top_cut (" + std::to_string(top_cut) + ")");
  }
  require(workers >= 1 && workers <= 64, "federation.workers must be in [1, 64]");
  protection.validate("federation.");
  require(eval_every >= 1, "federation.eval_every must be >= 1");
  require(run_fleet || !baselines.empty(),
          "federation.run_fleet: false runs only the baselines, and federation.baselines is empty: name one "
          "(centralized, local_only, fedavg_nosplit) or set run_fleet: true");
  parsed_baselines();
  strategy.validate();
  try {
    dp.validate();
    // natural partition (clients 0): as many sites as an aggregator admits by default.
    secure_aggregation.validate(clients > 0 ? clients : aggregator::AggregatorOptions{}.max_registered);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("federation.") + e.what());
  }
}

split::SiteBlocks FleetOptions::site_blocks(int64_t n_layers) const {
  if (mode == FleetMode::nosplit) return split::all_blocks();
  return split::site_blocks(split_mode, cut_layer, top_cut, n_layers);
}

std::vector<Baseline> FleetOptions::parsed_baselines() const {
  std::vector<Baseline> out;
  for (const std::string& name : baselines) out.push_back(parse_baseline(name));
  return out;
}

void SimulationConfig::validate() const {
  require(!model.empty(), "model: required: the path of the base model GGUF");
  require(!train_files.empty(), "data.train: required: the training data (JSONL files or a glob)");
  require(eval_fraction >= 0 && eval_fraction < 1, "data.eval_fraction must be in [0, 1)");
  require(eval_batches >= 0, "data.eval_batches must be >= 0 (0: all)");
  require(threads >= 0, "runtime.threads must be >= 0");
  require(!output_dir.empty(), "output.dir: required: the run directory");
  require(handshake_timeout_ms > 0, "secure.handshake_timeout_ms must be > 0");
  lora.validate();
  train.validate();
  batches.validate();
  fleet.validate();
  aggregator::StrategyOptions strategy = fleet.strategy;
  strategy.lora_aggregation = lora.aggregation;
  strategy.validate();
  require(lora.aggregation != lora::LoraAggregation::product || (!fleet.dp.enabled && !fleet.secure_aggregation.enabled),
          "lora.aggregation product needs every site's own adapters to multiply out; under federation.dp or "
          "federation.secure_aggregation the aggregator sees only a (noisy) sum: use lora.aggregation ffa, which is "
          "exact under both");
  require(!fleet.lr_across_rounds || train.min_lr_ratio > 0,
          "federation.lr_across_rounds decays each round's rate to train.min_lr_ratio x train.lr, and "
          "train.min_lr_ratio is 0 (a rate of 0 means the site's own): set train.min_lr_ratio above 0");
  require(fleet.site_ranks.empty() || lora.aggregation == lora::LoraAggregation::product,
          "federation.site_ranks (heterogeneous ranks) needs lora.aggregation: product, which merges the sites' "
          "products whatever their ranks; lora.aggregation is " + lora::aggregation_name(lora.aggregation));
  for (int64_t rank : fleet.site_ranks) {
    require(rank <= lora.rank, "federation.site_ranks: " + std::to_string(rank) + " is above lora.rank " +
                                   std::to_string(lora.rank) + ", the global adapters' rank; each must be in [1, " +
                                   std::to_string(lora.rank) + "]");
  }
}

int64_t SimulationConfig::site_local_steps(const FleetData& data, size_t index) const {
  if (fleet.local_epochs <= 0) return train.steps;
  return data::steps_for_epochs(data.gather(data.sites.at(index).train), batches, fleet.local_epochs);
}

lora::LoraOptions SimulationConfig::site_lora(size_t index) const {
  lora::LoraOptions site = lora;
  if (fleet.site_ranks.empty()) return site;
  site.rank = fleet.site_ranks[index % fleet.site_ranks.size()];
  // The same scale alpha / rank as the global: with lora.alpha kept, a rank-2
  // site's scale would be 4x a rank-8 site's, and so, at one learning rate,
  // its steps (on the built-in fleet that diverged: experiments/lora_aggregation).
  site.alpha = lora.alpha * static_cast<double>(site.rank) / static_cast<double>(lora.rank);
  return site;
}

}  // namespace cleave::simulate
