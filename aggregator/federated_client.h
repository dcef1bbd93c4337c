// A site in a federation: registers with the aggregator, polls for work, and
// for each round it is sampled in loads the global adapters, trains locally
// through a TrainStep (split::SplitTrainStep against a split server, or
// LocalTrainStep for federation without split), and sends back the adapter
// delta (local - global) with its sample count and metrics. Only adapters,
// deltas and metrics go to the aggregator (and activations and gradients to
// the split server); the site's examples never leave this object.
//
// Requests that go unanswered are resent after a backoff and a reconnect, up
// to max_attempts in a row, then FederationError is thrown. A round whose
// local training fails (say the split server is down) is logged and skipped:
// the aggregator closes the round without this site.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "aggregator/aggregator_link.h"
#include "aggregator/client_update.h"
#include "aggregator/federation_messages.h"
#include "client/batching.h"
#include "client/train_step.h"
#include "client/trainer.h"
#include "metrics/cost_meter.h"
#include "secagg/site_session.h"
#include "transport/channel.h"
#include "util/log.h"

namespace cleave::lora {
class AdapterSet;
}

namespace cleave::aggregator {

struct FederatedClientOptions {
  std::string client_id = "site-0";
  // Local training: lr, schedule, grad_clip, weight_decay; `steps` is the
  // default when the aggregator sends local_steps 0. round and proximal_mu
  // come from each round's assignment.
  TrainOptions train;
  // Batches; each round draws its own shuffle from (batches.seed, round), so a
  // round's batches do not depend on what ran before.
  data::BatchOptions batches;
  int64_t request_timeout_ms = 10000;   // per attempt
  int max_attempts = 8;                 // unanswered attempts in a row before giving up
  int64_t backoff_ms = 200;             // doubled after each unanswered attempt
  int64_t max_backoff_ms = 5000;
  int64_t max_wait_ms = 60000;          // cap on the aggregator's retry_after
  size_t max_message_bytes = 256u << 20;
  // The blocks this site trains, sent at registration: the aggregator refuses
  // a site whose blocks are not the federation's.
  split::SiteBlocks blocks;
  // A signal: requests and waits end with net::RequestStopped.
  const std::atomic<bool>* stop = nullptr;
  // Secure aggregation: the least this site accepts, the key of its federation
  // certificate that signs its round keys, and the CA its peers' keys must
  // chain to. Without signer and verifier the site refuses secure rounds.
  secagg::SiteRequirements secure;
  std::shared_ptr<const secagg::KeySigner> signer;
  std::shared_ptr<const secagg::KeyVerifier> verifier;
  // Called before local training; what it returns is held until training
  // ends (the simulator bounds how many sites train at once). Empty: no bound.
  std::function<std::shared_ptr<void>()> training_slot;

  void validate() const;                // throws std::invalid_argument naming the field
  LinkOptions link() const;             // the request/retry fields
};

struct SiteRound {
  uint32_t round = 0;
  int64_t num_samples = 0;
  std::map<std::string, double> metrics;
  bool trained = false;                 // false: local training failed (see error)
  bool accepted = false;                // the aggregator accepted the update
  std::string error;                    // why training failed or the update was rejected
  NamedTensors delta;                   // what was sent (encoded and masked under secure aggregation)
  bool secure = false;                  // reported through secure aggregation
  // What the round cost this site, by phase, from the assignment to the
  // update's acknowledgement, with its training tokens (metrics/cost_meter.h).
  metrics::RoleCost cost;
};

// What one poll of the aggregator gave (exactly one member is set).
struct RoundPoll {
  std::optional<SiteRound> trained;     // the site was assigned a round and took part
  std::optional<uint32_t> wait_ms;      // not sampled now: poll again after this long
  std::optional<Finished> finished;     // the run is over
};

struct SiteReport {
  std::vector<SiteRound> rounds;        // rounds this site was sampled in
  uint32_t rounds_completed = 0;        // by the federation, from Finished
  bool failed = false;                  // the federation stopped early
  std::string reason;
};

class FederatedClient {
 public:
  using EvalFn = std::function<double()>;   // held-out perplexity with the current adapters

  // `adapters` are the ones `step` trains (the client blocks for a split
  // site, all blocks otherwise); `base_fingerprint` is
  // LlamaModel::base_fingerprint() of the site's base model.
  FederatedClient(std::string base_fingerprint, lora::AdapterSet& adapters, TrainStep& step,
                  net::ClientChannel& aggregator, std::vector<data::Example> train,
                  FederatedClientOptions options, Log log = Log::to_stderr("client"));

  // With an evaluation, each round reports eval_perplexity_global (the global
  // adapters on this site's held-out data) and eval_perplexity (after local training).
  void on_eval(EvalFn eval) { eval_ = std::move(eval); }

  // Registers and takes part until the aggregator says the run is over.
  SiteReport run();

  // The pieces run() is made of, for a driver that schedules sites itself
  // (the simulator instantiates a site only for the rounds it is sampled in).
  void register_site();
  // One RoundRequest; when the aggregator assigns a round, trains it and
  // sends the update (see train_round). An error reply (e.g. an aggregator
  // restarted without its checkpoint) makes the site register again, up to
  // max_attempts times in a row, then throws FederationError.
  RoundPoll poll_once();
  // Local training from the assignment's global adapters, then the update.
  SiteRound train_round(const RoundAssignment& assignment);
  // How long to wait before polling again after a round whose local training
  // failed (say the split server is restarting): backoff_ms doubled for each
  // failed round in a row, capped at max_backoff_ms, with jitter; 0 after a
  // round that trained.
  int64_t retry_delay_ms() const;

 private:
  // Local training from the assignment's adapters (result.trained, metrics,
  // delta clipped for DP); false when it failed (result.error says why).
  bool train_locally(const RoundAssignment& assignment, const NamedTensors& global, SiteRound& result);
  // Secure aggregation around train_locally: keys and shares before, the
  // masked input and the unmask shares after (federated_client_secure.cpp).
  SiteRound train_secure_round(const RoundAssignment& assignment, const NamedTensors& global);
  // Polls for `phase`'s input until the aggregator has it; throws
  // secagg::Refusal when it aborts the round.
  net::Bytes secure_poll(uint32_t round, uint8_t phase, FederationMessage expected);
  // Sends a protocol message, expecting an UpdateAck; throws secagg::Refusal when it is refused.
  void secure_send(FederationMessage type, const net::Bytes& frame, uint32_t round);
  // Tells the aggregator this site sends nothing more in `round` (best effort).
  void withdraw(uint32_t round, const std::string& reason);

  std::string base_fingerprint_;
  lora::AdapterSet& adapters_;
  TrainStep& step_;
  std::vector<data::Example> train_;
  FederatedClientOptions options_;
  Log log_;
  EvalFn eval_;
  AggregatorLink link_;
  int refusals_ = 0;
  int failed_rounds_ = 0;             // rounds in a row whose local training failed
  std::optional<uint32_t> declined_round_;   // refused before taking part: not asked again
};

// The per-round batch seed: a site's seed mixed with the round number.
uint64_t round_batch_seed(uint64_t seed, uint32_t round);

}  // namespace cleave::aggregator
