// One sampled site's round in a simulated fleet: the site is instantiated
// (its examples copied out of the pool, adapters, train step, FederatedClient),
// takes part in the open round through the deployment's role code, and is
// dropped. The worker pool runs the sampled sites of a round on a few threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aggregator/federated_client.h"
#include "simulate/fleet_data.h"
#include "simulate/simulation_config.h"
#include "transport/channel.h"
#include "util/log.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::simulate {

// How many site instances are alive, at most and in all (instances, not bytes:
// the memory-independence check counts these).
class SiteCensus {
 public:
  void enter();
  void leave();
  int64_t live() const { return live_.load(); }
  int64_t peak() const { return peak_.load(); }
  int64_t created() const { return created_.load(); }

 private:
  std::atomic<int64_t> live_{0}, peak_{0}, created_{0};
};

// At most `slots` holders at once (a counting semaphore, which C++17 lacks).
// Must outlive every slot it handed out.
class TrainingSlots {
 public:
  explicit TrainingSlots(int64_t slots) : free_(slots) {}
  // Blocks until a slot is free; the slot is given back when the last copy goes.
  std::shared_ptr<void> acquire();

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  int64_t free_;
};

// What every site of a fleet shares.
struct SiteContext {
  std::shared_ptr<const LlamaModel> model;
  const FleetData* data = nullptr;
  const SimulationConfig* config = nullptr;
  std::string base_fingerprint;
  SiteCensus* census = nullptr;
  // Each site's local steps per round (SimulationConfig::site_local_steps),
  // counted once for the run rather than from its examples every round.
  std::vector<int64_t> local_steps;
  Log log = Log::silent();
  // Secure aggregation: each site signs with its certificate from the run's
  // PKI (its signer loaded once, on its first round); one verifier (the run's
  // CA) serves every site.
  std::function<std::shared_ptr<const secagg::KeySigner>(const std::string& site_id)> signer;
  std::shared_ptr<const secagg::KeyVerifier> verifier;
  // Held while a site trains, so at most `workers` train at once when every
  // sampled site of a round runs the protocol concurrently.
  std::function<std::shared_ptr<void>()> training_slot;
};

// The options site `index` of the fleet runs with (its own batch seed).
aggregator::FederatedClientOptions site_options(const SiteContext& context, const SiteData& site, size_t index);

// Instantiates site `index`, polls the aggregator once over `aggregator`
// (the site must be sampled in the open round), trains through `split` (split
// mode) or locally, sends the update and drops the site. A site that was not
// given a round, or whose training failed, comes back with trained = false.
aggregator::SiteRound run_site_round(const SiteContext& context, size_t index, net::ClientChannel& aggregator,
                                     net::ClientChannel* split);

// One site's channels: to the aggregator, and to the split server (null in
// nosplit mode), each under the site's own certificate with TLS.
struct SiteChannels {
  std::unique_ptr<net::ClientChannel> aggregator;
  std::unique_ptr<net::ClientChannel> split;
};

// Runs the sites `indices` on min(workers, sites) threads (a thread per site
// under secure aggregation, whose phases need every site at once); each site gets
// its own channels from `connect(index)` for its round (as in a deployment:
// the services only accept a site's messages under its own certificate).
// Results in the order of `indices`.
std::vector<aggregator::SiteRound> run_sites(const SiteContext& context, const std::vector<size_t>& indices,
                                             int64_t workers, const std::function<SiteChannels(size_t)>& connect);

// Sites' reports of a round as text, for a rank of an MPI run to send rank 0
// (simulate/fleet_ranks.h): what rank 0 uses of them, the round, samples,
// whether the site trained and the aggregator accepted its update, why not,
// and what the round cost it; floating point exactly (hexadecimal). The
// update itself went to the aggregator over the fleet's channel.
std::string encode_reports(const std::vector<aggregator::SiteRound>& rounds);
// Throws std::runtime_error on text encode_reports did not write.
std::vector<aggregator::SiteRound> decode_reports(const std::string& text);

}  // namespace cleave::simulate
