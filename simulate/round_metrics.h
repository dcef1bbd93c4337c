// Per-round measurements of a simulated fleet and the run directory files
// they go to: metrics.csv (one row per round) and metrics.jsonl (the same
// plus the per-site perplexities), both flushed after every round.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "simulate/round_cost.h"
#include "wire/frame.h"

namespace cleave::simulate {

// Bytes on the wire per channel. "up" is site -> server (aggregator or split
// server), "down" the reverse; counted at the servers, whole frames.
struct ChannelBytes {
  uint64_t activations_up = 0;    // smashed activations (split forward)
  uint64_t activations_down = 0;  // u-shaped only: activations back to the site
  uint64_t gradients_up = 0;      // u-shaped only: gradients to the server
  uint64_t gradients_down = 0;    // d(loss)/d(smashed) back to the site
  uint64_t adapters_up = 0;       // adapter deltas (updates, or masked inputs under secure aggregation)
  uint64_t adapters_down = 0;     // global adapters (round assignments)
  uint64_t control = 0;           // registration, polls, waits, acks, hellos, errors, secure aggregation's keys and shares
  // The labels (target ids and weights: the sites' text) inside the forward
  // requests, a part of activations_up and not counted again in total();
  // vanilla only: 0 in u_shaped, where the labels stay at the sites.
  uint64_t labels_up = 0;

  uint64_t total() const;
  ChannelBytes operator-(const ChannelBytes& earlier) const;
  ChannelBytes operator+(const ChannelBytes& other) const;
};

// What the split server counted besides its frames.
struct SplitCounts {
  const wire::ByteCounter* frames = nullptr;   // split messages by type
  uint64_t label_bytes = 0;                    // split::SplitServer::label_bytes()
  bool u_shaped = false;                       // forward replies carry activations, not gradients
};

// Sums the servers' counters by channel: `aggregator` counts federation
// messages (null: none), `split` split messages.
ChannelBytes channel_bytes(const wire::ByteCounter* aggregator, const SplitCounts& split = {});

struct RoundMetrics {
  int64_t round = 0;                       // 1-based
  int64_t rounds = 0;                      // of the run
  int64_t sampled = 0, reported = 0;       // sites sampled / updates accepted
  double train_loss = 0;                   // sample-weighted mean over reporting sites
  double eval_perplexity = 0;              // global held-out set, global adapters after the round; 0: not evaluated
  double validation_perplexity = 0;        // the validation set (federation.validation_fraction); 0: none or not evaluated
  int64_t train_tokens = 0;                // input positions trained this round (steps x batch x seq_len, all sites)
  int64_t cumulative_train_tokens = 0;     // up to and including this round
  std::map<std::string, double> client_perplexity;   // sampled sites' held-out splits, global adapters
  ChannelBytes bytes;                      // this round
  ChannelBytes cumulative;                 // up to and including this round
  double client_seconds = 0;               // local training of the sampled sites (wall)
  double aggregation_seconds = 0;          // strategy, checkpoint and split-server round close
  double eval_seconds = 0;
  double round_seconds = 0;                // all of the above and the rest
  double elapsed_seconds = 0;              // since the run started
  std::optional<double> dp_epsilon;        // federation.dp: epsilon at dp.delta after this round
  std::optional<double> lora_truncation_error;   // lora.aggregation product: the aggregator's (lora::product_mean)
  std::optional<RoundCost> cost;           // per role CPU, wall and energy (fleets; baselines: none)

  double client_perplexity_mean() const;   // 0 when none
};

// The columns of metrics.csv, in order.
const std::vector<std::string>& metrics_columns();

class MetricsFiles {
 public:
  // Creates (truncates) <dir>/metrics.csv with its header and <dir>/metrics.jsonl.
  explicit MetricsFiles(const std::string& dir);
  void write(const RoundMetrics& metrics);

 private:
  std::ofstream csv_, jsonl_;
  std::string dir_;
};

// "round 3/10  loss 2.314  ppl 9.87  bytes 12.4 MB  eta 1m05s"
std::string progress_line(const RoundMetrics& metrics);
// "1.2 GB", "340 KB", "12 B"
std::string format_bytes(double bytes);

}  // namespace cleave::simulate
