// Federated strategies behind one interface, so the aggregator's round loop is
// written once: per round it asks configure() what to tell the sampled
// clients, collects their updates, and hands them to aggregate() for the new
// global adapters. Server-optimizer strategies carry state across rounds,
// exposed through state()/load_state() so a restarted aggregator resumes
// bit-exactly from its checkpoint.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aggregator/client_update.h"
#include "lora/lora_options.h"

namespace cleave::aggregator {

// What the server tells each sampled client for one round of local training.
struct ClientConfig {
  // FedProx: the client adds (proximal_mu / 2) * ||w - w_global||^2 over its
  // adapter weights to its local loss. 0 means plain local training.
  double proximal_mu = 0.0;
  // Optimizer steps to run this round; 0 means the client's own configured default.
  int local_steps = 0;
};

// FedProx (Li et al. 2020).
struct FedProxOptions {
  double proximal_mu = 0.01;  // > 0; the paper searches {0.001, 0.01, 0.1, 1}
  void validate() const;
};

// FedAdam / FedYogi server optimizer (Reddi et al. 2021, "Adaptive Federated
// Optimization", Algorithm 2 without bias correction, v initialised to tau^2).
struct FedOptOptions {
  double eta = 1e-2;    // server learning rate, > 0 (the paper tunes it per task)
  double beta1 = 0.9;   // first-moment decay, in [0, 1)
  double beta2 = 0.99;  // second-moment decay, in [0, 1)
  double tau = 1e-3;    // adaptivity: added to sqrt(v) and the start of v (tau^2), > 0
  void validate() const;
};

// FedAvgM: FedAvg with server momentum (Hsu, Qi and Brown 2019, "Measuring
// the Effects of Non-Identical Data Distribution for Federated Visual
// Classification", arXiv:1909.06335). eta 1 and momentum 0 is FedAvg.
struct FedAvgMOptions {
  double eta = 1.0;       // server learning rate, > 0
  // In [0, 1). 0.5: the best of the (eta, momentum) pairs tried on MedQuAD's
  // validation set (experiments/medquad_equal_epochs); at eta 1, momentum 0.8
  // scored 22.4 there against 17.5 (validation perplexity after 3 epochs).
  double momentum = 0.5;
  void validate() const;
};

// Coordinate-wise median or trimmed mean, with optional norm clipping of each
// client's delta before aggregating.
struct RobustOptions {
  double trim_fraction = 0.1;  // trimmed_mean only: fraction dropped at each end, in [0, 0.5)
  double clip_norm = 0.0;      // > 0 clips each delta to this global L2 norm; 0 = no clipping
  void validate() const;
};

struct StrategyOptions {
  // One of strategy_names(): fedavg, fedprox, fedavgm, fedadam, fedyogi, median, trimmed_mean.
  std::string name = "fedavg";
  int local_steps = 0;  // sent to clients in ClientConfig; >= 0, 0 = client's default
  // The fields of each strategy; only the chosen strategy's are used, all are validated.
  FedProxOptions fedprox;
  FedAvgMOptions fedavgm;
  FedOptOptions fedopt;
  RobustOptions robust;
  // lora.aggregation of the federation (every role uses the same): product
  // needs fedavg or fedprox (the mean of the products is the new global);
  // ffa and separate work with every strategy.
  lora::LoraAggregation lora_aggregation = lora::LoraAggregation::separate;
  // Throws std::invalid_argument naming the bad field (e.g. "fedopt.beta1")
  // or listing the valid strategy names.
  void validate() const;
};

class Strategy {
 public:
  virtual ~Strategy();

  virtual std::string name() const = 0;

  // Instructions for every client sampled in `round`.
  virtual ClientConfig configure(int round) const;

  // The new global adapters after `round`, from the global the clients started
  // from and their updates (already filtered by validate_update: an invalid
  // or empty set throws std::invalid_argument). The result has the global's
  // names, shapes and dtypes; the inputs are not modified.
  virtual NamedTensors aggregate(int round, const NamedTensors& global,
                                 const std::vector<ClientUpdate>& updates) = 0;

  // Everything the strategy carries between rounds, as tensors to checkpoint
  // next to the global adapters (copies, safe to keep). Empty when stateless.
  virtual NamedTensors state() const;
  // Restores state() output into a freshly made strategy built with the same
  // options; throws std::invalid_argument if it does not fit this strategy.
  virtual void load_state(const NamedTensors& state);

  // Whether aggregate() needs each site's update (median, trimmed mean), or
  // gives the same result from their weighted mean alone (FedAvg, FedProx,
  // FedAvgM, FedAdam, FedYogi): an SFL-V1 split server averages per tensor over the
  // sites whose blocks hold it and hands over that mean.
  virtual bool needs_each_update() const { return false; }

  // Under lora.aggregation product: ||M - B A||_F / ||M||_F of the last
  // aggregate() (lora::product_mean). Empty otherwise.
  virtual std::optional<double> lora_truncation_error() const { return std::nullopt; }

 protected:
  explicit Strategy(ClientConfig client_config) : client_config_(client_config) {}

  // Throws std::invalid_argument (naming strategy, round and client) unless
  // `updates` is non-empty and every update passes validate_update(global).
  void require_valid(int round, const NamedTensors& global, const std::vector<ClientUpdate>& updates) const;

  ClientConfig client_config_;
};

// The names make_strategy accepts, in documentation order.
const std::vector<std::string>& strategy_names();

// Validates `options` and builds the strategy it names.
std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options);

// The strategy's name with the options it uses and the lora aggregation, e.g.
// "fedadam (eta 0.01, beta1 0.9, beta2 0.99, tau 0.001; lora separate)": the
// aggregator and an SFL-V1 split server must aggregate alike, and compare it.
std::string strategy_signature(const StrategyOptions& options);

}  // namespace cleave::aggregator
