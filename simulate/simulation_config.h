// What a simulated fleet runs: the base model, the data and how it is split
// over sites, local training per round, the federation (rounds, sampling,
// strategy), the topology (split or not, transport, workers) and baselines.
// Plain structs with inline defaults; the CLI fills them from YAML (the
// `federation:` section plus the training sections of `cleave train`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aggregator/client_sampling.h"
#include "aggregator/dp_options.h"
#include "aggregator/secure_aggregation_options.h"
#include "aggregator/strategy.h"
#include "client/batching.h"
#include "client/partition.h"
#include "client/trainer.h"
#include "lora/lora_options.h"
#include "model/frozen_weight.h"
#include "split/site_blocks.h"
#include "split/smashed_protection.h"
#include "split/split_server.h"
#include "util/log.h"
#include "wire/tensor.h"

namespace cleave::simulate {

// How sites train: through a split server (SFL-V1 or V2; by default
// u_shaped, so the labels stay at the site: see FleetOptions::split_mode) or
// with the whole model at the site (FedAvg without split).
enum class FleetMode { split, nosplit };
FleetMode parse_fleet_mode(const std::string& name);   // "split" | "nosplit"
const char* fleet_mode_name(FleetMode mode);

// The roles' channels: in-process queues, or ZeroMQ on tcp://127.0.0.1 (port 0).
enum class FleetTransport { inproc, tcp };
FleetTransport parse_fleet_transport(const std::string& name);   // "inproc" | "tcp"
const char* fleet_transport_name(FleetTransport transport);

// Runs from the same configuration, for comparison (summary.md).
enum class Baseline { centralized, local_only, fedavg_nosplit };
Baseline parse_baseline(const std::string& name);   // centralized | local_only | fedavg_nosplit
const char* baseline_name(Baseline baseline);
const std::vector<std::string>& baseline_names();

struct FleetOptions {
  // Sites and their data.
  int64_t clients = 8;                 // registered sites; natural: 0 = one per source file
  data::PartitionKind partition = data::PartitionKind::dirichlet;
  double alpha = 0.5;                  // dirichlet concentration
  std::string label_field = "source";  // dirichlet: "source" (the file) or a JSONL field
  std::vector<double> shares;          // size_skew: explicit shares, else power law
  double exponent = 1.0;               // size_skew power law
  double client_eval_fraction = 0.1;   // held out of each site's examples, in [0, 1)
  int64_t client_eval_batches = 2;     // per-site held-out batches scored; 0: all

  // A study at equal data and to convergence: every method passes over the
  // same share of each site's data the same number of times, and stops when
  // its validation perplexity stops improving.
  double data_fraction = 1.0;          // share of each source file's records used (seeded), in (0, 1]
  // > 0: each sampled site's local steps per round pass over its own training
  // data this many times (ceil(epochs x rows / batch_size)), and train.steps
  // is not used; the baselines match it (centralized: the fleet's steps).
  double local_epochs = 0;
  // false: every round each site runs train's schedule (warmup, cosine to
  // min_lr_ratio) from train.lr. true: the round's peak rate itself decays by
  // a cosine across federation.rounds, from train.lr to train.min_lr_ratio x
  // train.lr at the last round (the aggregator's client_lr_min_ratio), as the
  // centralized baseline's one schedule decays across its epochs.
  bool lr_across_rounds = false;
  // Held out of each site's training examples (after client_eval_fraction);
  // their union is the validation set, scored with the held-out set and used
  // only to stop and to tune, never reported as the result.
  double validation_fraction = 0;
  // > 0: stop once validation perplexity has not improved on its best by
  // stop_min_improvement (relative) for this many evaluations in a row;
  // federation.rounds is then the most. Needs validation_fraction > 0.
  int64_t stop_patience = 0;
  double stop_min_improvement = 0.01;

  // Rounds.
  int64_t rounds = 5;
  int64_t clients_per_round = 4;       // 0: every registered site
  // random: a fresh draw every round; passes: every site once per pass of
  // ceil(sites / clients_per_round) rounds (aggregator/client_sampling.h),
  // with clients_per_round 1 the sites one after another (sequential split
  // learning, each site starting from the adapters the one before it left).
  aggregator::ClientSampling sampling = aggregator::ClientSampling::random;
  // Heterogeneous ranks (lora.aggregation product only): site i trains at
  // lora.rank site_ranks[i % size], each in [1, lora.rank], handed the global
  // at its rank each round. Empty: every site at lora.rank.
  std::vector<int64_t> site_ranks;
  aggregator::StrategyOptions strategy;
  // Client-level DP (federation.dp, as aggregator.dp): sites Poisson-sampled
  // at rate clients_per_round / clients, so a round's count varies.
  aggregator::DpOptions dp;
  // Secure aggregation (federation.secure_aggregation, as
  // aggregator.secure_aggregation): the sampled sites of a round run the
  // protocol at once (training still `workers` at a time); needs TLS.
  aggregator::SecureAggregationOptions secure_aggregation;

  // Topology.
  FleetMode mode = FleetMode::split;
  // split: u_shaped keeps blocks [0, cut_layer) and [top_cut, L), the head
  // and the loss at the sites; vanilla keeps [0, cut_layer) and sends the
  // labels (the sites' text) to the split server.
  split::SplitMode split_mode = split::SplitMode::u_shaped;
  int64_t cut_layer = 1;               // split: blocks [0, cut_layer) at the sites
  int64_t top_cut = 0;                 // u_shaped: blocks [top_cut, L) at the sites; 0: L - 1
  // Multi-hop (federation.split_chain): the block where each split server of
  // a chain starts, the first the sites' cut_layer; empty: one split server.
  // Hop k runs [split_chain[k], split_chain[k + 1]), the last up to top_cut
  // (u_shaped) or to L and the loss (vanilla).
  std::vector<int64_t> split_chain;
  // A fleet spread over processes (mpirun): the host name the other ranks
  // reach rank 0's services at (federation.service_host); "": 127.0.0.1 when
  // every rank is on one machine, else rank 0's host name.
  std::string service_host;
  split::ServerVariant variant = split::ServerVariant::sfl_v1;
  // What each site does to its smashed activations before they leave it
  // (federation.activation_clip / activation_noise); the noise is seeded
  // from the run's seed, the site and its instantiation, so runs repeat.
  split::SmashedProtection protection;
  // Codecs on the split channel (federation.activation_codec /
  // gradient_codec), both ways, and whether int4 rounds stochastically
  // (federation.stochastic_rounding), at the sites and the split server.
  wire::WireDType activation_codec = wire::WireDType::F32;
  wire::WireDType gradient_codec = wire::WireDType::F32;
  bool stochastic_rounding = false;
  FleetTransport transport = FleetTransport::inproc;
  int64_t workers = 1;                 // sampled sites trained at once
  int64_t eval_every = 1;              // global held-out perplexity every N rounds (and the last)

  std::vector<std::string> baselines;  // baseline_names()
  bool run_fleet = true;               // false: only the baselines (e.g. to tune each method's lr on its own)
  bool progress = true;                // the live progress line

  // Throws std::invalid_argument naming the field ("federation.rounds ...").
  void validate() const;
  std::vector<Baseline> parsed_baselines() const;
  // The blocks every site runs on a model of `n_layers` (all of them in nosplit).
  split::SiteBlocks site_blocks(int64_t n_layers) const;
};

struct FleetData;   // simulate/fleet_data.h

struct SimulationConfig {
  std::string model;                   // base model GGUF
  BaseQuant quant = BaseQuant::int8;
  lora::LoraOptions lora;
  std::vector<std::string> train_files;   // each may be a glob ("data/*.jsonl")
  std::string eval_file;               // global held-out file; "" : eval_fraction of the records
  std::string chat_template = "none";  // data.chat_template (data::choose_chat_format)
  double eval_fraction = 0.1;          // global held-out share of the records (before partitioning)
  int64_t eval_batches = 0;            // global held-out batches scored; 0: all
  data::BatchOptions batches;          // batch_size, seq_len, mode (seed comes from `seed`)
  TrainOptions train;                  // local training per round: steps = local steps
  uint64_t seed = 0;                   // partition, splits, adapters, shuffles, sampling
  int64_t threads = 0;                 // LibTorch intra-op threads; 0: cores / workers
  FleetOptions fleet;
  std::string output_dir = "runs/simulate";
  // secure.insecure: plaintext channels, warned about at the start. By
  // default every channel is mutual TLS 1.3 under a throw-away CA made for
  // the run in <output_dir>/pki.
  bool insecure = false;
  int64_t handshake_timeout_ms = 10000;   // secure.handshake_timeout_ms
  LogLevel log_level = LogLevel::info;    // the lowest level fleet.log keeps (--log-level)

  void validate() const;               // throws std::invalid_argument naming the field
  // The local steps site `index` of `data` trains per round: train.steps,
  // or under federation.local_epochs its share of epochs in steps.
  int64_t site_local_steps(const FleetData& data, size_t index) const;
  // The lora options site `index` trains with: lora at its federation.site_ranks
  // rank, with alpha scaled alike so that alpha / rank is the global's.
  lora::LoraOptions site_lora(size_t index) const;
};

}  // namespace cleave::simulate
