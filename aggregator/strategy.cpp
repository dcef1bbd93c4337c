#include "aggregator/strategy.h"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "aggregator/aggregation.h"
#include "aggregator/fedavg.h"
#include "aggregator/fedopt.h"
#include "aggregator/robust.h"

namespace cleave::aggregator {
namespace {

std::string joined_names() {
  std::string joined;
  for (const std::string& name : strategy_names()) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

// Throws naming `field` unless lo <= value < hi (or value > lo when open_low).
void require_in(const char* field, double value, double lo, double hi, bool open_low, const char* range) {
  const bool above_lo = open_low ? value > lo : value >= lo;
  if (!(std::isfinite(value) && above_lo && value < hi)) {
    throw std::invalid_argument(std::string(field) + " = " + std::to_string(value) +
                                " is invalid: it must be " + range);
  }
}

constexpr double kInf = INFINITY;

}  // namespace

void FedProxOptions::validate() const {
  require_in("fedprox.proximal_mu", proximal_mu, 0.0, kInf, true, "finite and > 0");
}

void FedAvgMOptions::validate() const {
  require_in("fedavgm.eta", eta, 0.0, kInf, true, "finite and > 0");
  require_in("fedavgm.momentum", momentum, 0.0, 1.0, false, "in [0, 1)");
}

void FedOptOptions::validate() const {
  require_in("fedopt.eta", eta, 0.0, kInf, true, "finite and > 0");
  require_in("fedopt.beta1", beta1, 0.0, 1.0, false, "in [0, 1)");
  require_in("fedopt.beta2", beta2, 0.0, 1.0, false, "in [0, 1)");
  require_in("fedopt.tau", tau, 0.0, kInf, true, "finite and > 0");
}

void RobustOptions::validate() const {
  require_in("robust.trim_fraction", trim_fraction, 0.0, 0.5, false, "in [0, 0.5)");
  require_in("robust.clip_norm", clip_norm, 0.0, kInf, false, "finite and >= 0 (0 disables clipping)");
}

void StrategyOptions::validate() const {
  bool known = false;
  for (const std::string& valid : strategy_names()) known = known || valid == name;
  if (!known) {
    throw std::invalid_argument("strategy.name '" + name + "' is unknown; valid names are " + joined_names());
  }
  if (local_steps < 0) {
    throw std::invalid_argument("strategy.local_steps = " + std::to_string(local_steps) +
                                " is invalid: it must be >= 0 (0 leaves it to each client)");
  }
  fedprox.validate();
  fedavgm.validate();
  fedopt.validate();
  robust.validate();
  if (lora_aggregation == lora::LoraAggregation::product && name != "fedavg" && name != "fedprox") {
    throw std::invalid_argument("lora.aggregation product makes the weighted mean of the sites' products the new "
                                "global adapters, which strategy " + name +
                                " does not do: use strategy fedavg or fedprox, or lora.aggregation separate or ffa");
  }
}

Strategy::~Strategy() = default;

ClientConfig Strategy::configure(int /*round*/) const { return client_config_; }

NamedTensors Strategy::state() const { return {}; }

void Strategy::load_state(const NamedTensors& state) {
  if (!state.empty()) {
    throw std::invalid_argument("strategy " + name() + " keeps no state between rounds but was given " +
                                std::to_string(state.size()) + " state tensors (first: " +
                                state.begin()->first + "); was the checkpoint written by another strategy?");
  }
}

void Strategy::require_valid(int round, const NamedTensors& global,
                             const std::vector<ClientUpdate>& updates) const {
  const std::string where = "strategy " + name() + ", round " + std::to_string(round);
  if (updates.empty()) {
    throw std::invalid_argument(where +
                                ": no client updates to aggregate; the round loop must close a round "
                                "only once enough clients reported");
  }
  for (const ClientUpdate& update : updates) {
    if (auto problem = validate_update(update, global_for_site(global, update.lora_rank, update.lora_scale))) {
      throw std::invalid_argument(where + ": " + *problem + " (filter updates with validate_update first)");
    }
  }
}

namespace {

using StrategyFactory = std::unique_ptr<Strategy> (*)(const StrategyOptions&);

// The one list of strategies: names in documentation order, each with its maker.
const std::vector<std::pair<std::string, StrategyFactory>>& strategy_table() {
  static const std::vector<std::pair<std::string, StrategyFactory>> table = {
      {"fedavg",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<FedAvg>(o.local_steps, o.lora_aggregation);
       }},
      {"fedprox",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<FedProx>(o.fedprox, o.local_steps, o.lora_aggregation);
       }},
      {"fedavgm",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<FedAvgM>(o.fedavgm, o.local_steps);
       }},
      {"fedadam",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<FedAdam>(o.fedopt, o.local_steps);
       }},
      {"fedyogi",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<FedYogi>(o.fedopt, o.local_steps);
       }},
      {"median",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<RobustAggregate>(RobustAggregate::Rule::Median, o.robust, o.local_steps);
       }},
      {"trimmed_mean",
       [](const StrategyOptions& o) -> std::unique_ptr<Strategy> {
         return std::make_unique<RobustAggregate>(RobustAggregate::Rule::TrimmedMean, o.robust, o.local_steps);
       }},
  };
  return table;
}

}  // namespace

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, make] : strategy_table()) out.push_back(name);
    return out;
  }();
  return names;
}

std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options) {
  options.validate();   // the name is one of the table's
  for (const auto& [name, make] : strategy_table()) {
    if (name == options.name) return make(options);
  }
  throw std::invalid_argument("strategy.name '" + options.name + "' is unknown; valid names are " + joined_names());
}

std::string strategy_signature(const StrategyOptions& options) {
  auto number = [](double value) {
    std::ostringstream text;
    text << value;
    return text.str();
  };
  std::string used;
  if (options.name == "fedprox") {
    used = "mu " + number(options.fedprox.proximal_mu);
  } else if (options.name == "fedavgm") {
    used = "eta " + number(options.fedavgm.eta) + ", momentum " + number(options.fedavgm.momentum);
  } else if (options.name == "fedadam" || options.name == "fedyogi") {
    used = "eta " + number(options.fedopt.eta) + ", beta1 " + number(options.fedopt.beta1) + ", beta2 " +
           number(options.fedopt.beta2) + ", tau " + number(options.fedopt.tau);
  } else if (options.name == "median" || options.name == "trimmed_mean") {
    used = (options.name == "trimmed_mean" ? "trim_fraction " + number(options.robust.trim_fraction) + ", " : "") +
           "clip_norm " + number(options.robust.clip_norm);
  }
  return options.name + " (" + used + (used.empty() ? "" : "; ") + "lora " +
         lora::aggregation_name(options.lora_aggregation) + ")";
}

}  // namespace cleave::aggregator
