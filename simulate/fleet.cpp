#include "simulate/fleet.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iomanip>
#include <sstream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <unistd.h>

#include "aggregator/aggregator_link.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/peer_policies.h"
#include "client/batching.h"
#include "client/evaluate.h"
#include "lora/adapter_set.h"
#include "lora/split_adapters.h"
#include "metrics/cpu_clock.h"
#include "model/llama_model.h"
#include "secagg/key_signature.h"
#include "simulate/convergence.h"
#include "simulate/fleet_ranks.h"
#include "simulate/fleet_network.h"
#include "simulate/site_round.h"
#include "split/peer_policy.h"
#include "split/split_server.h"
#include "util/stopwatch.h"

namespace cleave::simulate {
namespace {

// Steady time the driver can move forward: once every sampled site has
// reported or failed there is nobody left to wait for, so instead of sleeping
// until the round deadline the fleet skips to it, and the aggregator closes
// the round without the failed sites exactly as a deployment would.
class FleetClock : public Clock {
 public:
  int64_t now_ms() const override { return steady_.now_ms() + skipped_.load(); }
  void skip(int64_t ms) { skipped_ += ms; }

 private:
  SteadyClock steady_;
  std::atomic<int64_t> skipped_{0};
};

// Rounds closed by the service, handed from its callback (which runs under
// the service's lock) to the driver.
struct ClosedRounds {
  struct Closed {
    aggregator::RoundSummary summary;
    int64_t callback_ms = 0;   // SteadyClock time the callback ran
  };
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Closed> closed;
};

// A serve loop on its own thread, stopped and joined on destruction.
class ServeThread {
 public:
  template <class Body>
  explicit ServeThread(Body body) : thread_([this, body] { body(stop_); }) {}
  ~ServeThread() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What the sites of one process share: their context, the census of their
// instances, the training slots and (secure aggregation) their signers.
struct SiteSide {
  SiteCensus census;
  TrainingSlots slots;
  std::mutex signers_mutex;
  std::map<std::string, std::shared_ptr<const secagg::KeySigner>> signers;
  SiteContext context;

  // `verifier`: the identity whose CA checks the sites' round keys.
  SiteSide(std::shared_ptr<const LlamaModel> model, const FleetData& data, const SimulationConfig& config,
           const Log& log, const FleetPki* pki, const secure::TlsIdentity* verifier)
      : slots(config.fleet.workers) {
    context.model = model;
    context.data = &data;
    context.config = &config;
    context.base_fingerprint = model->base_fingerprint();
    context.census = &census;
    context.local_steps.resize(data.sites.size());
    for (size_t i = 0; i < data.sites.size(); ++i) context.local_steps[i] = config.site_local_steps(data, i);
    context.log = log.prefixed("site: ");
    if (config.fleet.secure_aggregation.enabled && pki && verifier) {
      context.signer = [this, pki](const std::string& id) {
        std::lock_guard<std::mutex> lock(signers_mutex);
        std::shared_ptr<const secagg::KeySigner>& signer = signers[id];
        if (!signer) signer = std::make_shared<secagg::KeySigner>(pki->identity(id));
        return signer;
      };
      context.verifier = std::make_shared<secagg::KeyVerifier>(*verifier);
      context.training_slot = [this] { return slots.acquire(); };
    }
  }
};

// Site `index`'s channels for its round, each under the site's own
// certificate: to the aggregator and (split_address not empty) to the sites'
// split server.
std::function<SiteChannels(size_t)> site_connector(FleetNetwork& network, const FleetData& data,
                                                   const std::string& aggregator_address,
                                                   const std::string& split_address) {
  return [&network, &data, aggregator_address, split_address](size_t index) {
    const std::string& id = data.sites[index].id;
    SiteChannels channels;
    channels.aggregator = network.connect(id, aggregator_address, kAggregatorNode);
    if (!split_address.empty()) channels.split = network.connect(id, split_address, kSplitServerNode);
    return channels;
  };
}

// What rank 0 owes the other ranks of a spread run, whatever happens: the
// services' addresses, then "done" when the run ends; a run that fails
// before its services are up sends an empty address line instead.
class OtherRanks {
 public:
  explicit OtherRanks(FleetRanks* ranks) : ranks_(ranks) {}   // null: one process, nothing owed
  ~OtherRanks() {
    if (!ranks_) return;
    std::string last = addresses_sent_ ? "done" : "";
    ranks_->broadcast(last);
  }
  void send_addresses(std::string addresses) {
    if (!ranks_) return;
    ranks_->broadcast(addresses);
    addresses_sent_ = true;
  }

 private:
  FleetRanks* ranks_;
  bool addresses_sent_ = false;
};

// "plan 3 0 4 5": round 3's sampled site indices, in the aggregator's order;
// "done": the run is over.
std::string round_plan(int64_t round, const std::vector<size_t>& sampled) {
  std::string plan = "plan " + std::to_string(round);
  for (size_t index : sampled) plan += " " + std::to_string(index);
  return plan;
}

// One split server of the fleet's chain (one hop without federation.split_chain).
struct SplitHop {
  std::unique_ptr<split::SplitServer> server;
  std::unique_ptr<net::ServerChannel> channel;
  std::unique_ptr<ServeThread> thread;
  std::string address;
};

// Where the services' and the evaluation's meters and the process's clocks
// stood at one moment: a round is charged the difference of two.
struct CostMark {
  metrics::RoleCost split_server, aggregator, evaluation;
  double process_cpu = 0;
  std::optional<metrics::EnergyCounters> energy;

  // `split_servers`: every hop of the chain (none without split).
  static CostMark now(const std::vector<const split::SplitServer*>& split_servers,
                      const aggregator::AggregatorService& service, const metrics::CostMeter& evaluation) {
    CostMark mark;
    for (const split::SplitServer* hop : split_servers) {
      metrics::RoleCost cost = hop->cost();
      if (hop != split_servers.front()) cost.tokens = 0;   // every hop serves the same tokens: counted once
      mark.split_server += cost;
    }
    mark.aggregator = service.cost();
    mark.evaluation = evaluation.totals();
    mark.process_cpu = metrics::process_cpu_seconds();
    if (metrics::machine_powercap().available()) mark.energy = metrics::machine_powercap().read();
    return mark;
  }
};

// The round between two marks; `sites`: what the round's sites reported.
RoundCost round_cost(const CostMark& start, const CostMark& end, const std::vector<aggregator::SiteRound>& sites) {
  RoundCost cost;
  for (const aggregator::SiteRound& site : sites) cost.site += site.cost;
  cost.split_server = end.split_server - start.split_server;
  cost.aggregator = end.aggregator - start.aggregator;
  cost.evaluation = end.evaluation - start.evaluation;
  cost.process_cpu_seconds = end.process_cpu - start.process_cpu;
  if (start.energy && end.energy) cost.machine_joules = metrics::machine_powercap().joules_between(*start.energy, *end.energy);
  return cost;
}

}  // namespace

Fleet::Fleet(std::shared_ptr<const LlamaModel> model, const FleetData& data, SimulationConfig config, Log log)
    : model_(std::move(model)), data_(data), config_(std::move(config)), log_(std::move(log)) {
  config_.fleet.validate();
  if (data_.sites.empty()) throw std::invalid_argument("the fleet has no sites: check data.train and federation.clients");
  const split::SiteBlocks blocks = config_.fleet.site_blocks(model_->n_layers());
  blocks.validate(model_->n_layers(), "federation.");
  if (!config_.fleet.split_chain.empty()) {
    const int64_t end = blocks.layout == split::SiteLayout::u_shaped ? blocks.top_cut : model_->n_layers();
    if (config_.fleet.split_chain.back() >= end) {
      throw std::invalid_argument("federation.split_chain's last hop starts at block " +
                                  std::to_string(config_.fleet.split_chain.back()) + ", leaving it none below " +
                                  std::to_string(end) + (blocks.layout == split::SiteLayout::u_shaped
                                                             ? " (the sites' top_cut)"
                                                             : " (the model's blocks)"));
    }
  }
  if (config_.fleet.clients_per_round > static_cast<int64_t>(data_.sites.size())) {
    throw std::invalid_argument("federation.clients_per_round " + std::to_string(config_.fleet.clients_per_round) +
                                " exceeds the " + std::to_string(data_.sites.size()) + " sites");
  }
}

FleetResult Fleet::run(const RoundObserver& on_round, FleetRanks* ranks) {
  const FleetOptions& fleet = config_.fleet;
  const bool split = fleet.mode == FleetMode::split;
  const std::vector<int64_t> hop_cuts =
      fleet.split_chain.empty() ? std::vector<int64_t>{fleet.cut_layer} : fleet.split_chain;
  const auto start = SteadyTime::now();
  // With local epochs, a site whose training data fills no packed row would
  // make no step and send no update in any round; it does not join (with one
  // site per round its turn would leave a round with no update at all). Its
  // records still count for the baselines, as they would at a real site.
  std::vector<bool> joins(data_.sites.size(), true);
  for (size_t i = 0; i < data_.sites.size(); ++i) {
    if (fleet.local_epochs > 0 && data::rows_per_epoch(data_.gather(data_.sites[i].train), config_.batches) == 0) {
      joins[i] = false;
      log_.warning("site " + data_.sites[i].id + " has too few tokens for one row of seq_len + 1 = " +
                   std::to_string(config_.batches.seq_len + 1) + ": it makes no step in an epoch and does not join");
    }
  }
  const int64_t n_sites = std::count(joins.begin(), joins.end(), true);
  if (n_sites == 0) throw std::invalid_argument("no site has enough tokens for one row of data.seq_len + 1: lower seq_len");
  // Spread over processes (mpirun): the other ranks wait for the services'
  // addresses, then for each round's plan, until "done" (also on a failure).
  const bool spread = ranks && ranks->size() > 1;
  OtherRanks other_ranks(spread ? ranks : nullptr);
  const FleetTransport transport = spread ? FleetTransport::tcp : fleet.transport;
  if (spread && fleet.transport != FleetTransport::tcp) {
    log_.info(ranks->describe() + ": the sites of other ranks reach the services over tcp://127.0.0.1 "
              "(federation.transport inproc spans one process)");
  }

  // Every channel is mutual TLS 1.3 under the run's throw-away CA, unless insecure.
  std::optional<FleetPki> pki;
  double pki_seconds = 0;
  if (!config_.insecure) {
    std::vector<std::string> site_ids;
    for (const SiteData& site : data_.sites) site_ids.push_back(site.id);
    const auto pki_start = SteadyTime::now();
    pki = issue_fleet_pki(fleet_pki_dir(config_.output_dir), site_ids, split ? hop_cuts.size() : 0);
    pki_seconds = seconds_since(pki_start);
    log_.info("pki: throw-away CA " + pki->ca_cert + ", " + std::to_string(pki->nodes.size()) + " certificates in " +
              std::to_string(pki_seconds) + " s");
  }
  FleetNetwork network(transport, pki ? &*pki : nullptr, log_, config_.handshake_timeout_ms);
  if (spread && (!fleet.service_host.empty() || ranks->spans_machines())) {
    std::string host = fleet.service_host;
    if (host.empty()) {
      char name[256] = {};
      if (gethostname(name, sizeof name - 1) != 0) throw std::runtime_error("gethostname failed: set federation.service_host");
      host = name;
    }
    network.serve_on_host(host);
    log_.info(ranks->describe() + ": the services listen on every interface; the other ranks reach them at " + host);
  }

  // The split server (SFL-V1 or V2) for blocks [cut_layer, L) (vanilla) or
  // [cut_layer, top_cut) (u_shaped); or a chain of them
  // (federation.split_chain), the sites talking to the first, each hop to
  // the next under its own certificate. Built from the last hop back.
  std::vector<SplitHop> hops(split ? hop_cuts.size() : 0);
  // Every hop starts from its blocks' share of the one split server's
  // initial adapters, so a chain trains what one server would.
  const lora::AdapterSet initial =
      split ? lora::AdapterSet::create(*model_, config_.lora, config_.seed + 1,
                                       [&](int64_t layer) { return layer >= fleet.cut_layer; })
            : lora::AdapterSet{};
  for (size_t k = hops.size(); k-- > 0;) {
    const std::string node = split_hop_node(k);
    split::SplitServerOptions options;
    options.variant = fleet.variant;
    options.lora = config_.lora;
    options.min_cut_layer = hop_cuts[k];
    options.seed = config_.seed + 1;
    options.recompute = config_.train.recompute;   // train.recompute: every block of the fleet
    options.stochastic_rounding = fleet.stochastic_rounding;
    options.release_clients_at_round_end = true;   // sites are instantiated afresh each round
    options.strategy = fleet.strategy;             // SFL-V1 merges its copies as the aggregator does
    const bool last = k + 1 == hops.size();
    if (!last) {
      options.next.address = hops[k + 1].address;
      options.next.name = split_hop_node(k + 1);
      options.next.cut_layer = static_cast<int32_t>(hop_cuts[k + 1]);
      options.next.activation_codec = fleet.activation_codec;
      options.next.gradient_codec = fleet.gradient_codec;
    }
    SplitHop& hop = hops[k];
    const int64_t end = last ? model_->n_layers() : hop_cuts[k + 1];
    hop.server = std::make_unique<split::SplitServer>(
        model_, options, initial.subset([&](int64_t layer) { return layer >= hop_cuts[k] && layer < end; }),
        log_.prefixed(node + ": "));
    if (!last) hop.server->connect_next_hop(network.connect(node, hops[k + 1].address, split_hop_node(k + 1)));
    hop.channel = network.bind(node, split::split_server_policy(k == 0 ? "" : split_hop_node(k - 1)));
    hop.address = network.address(node, *hop.channel);
    split::SplitServer& server = *hop.server;
    net::ServerChannel& channel = *hop.channel;
    hop.thread = std::make_unique<ServeThread>([&server, &channel](const std::atomic<bool>& stop) {
      server.serve(channel, stop, 5);
    });
  }
  split::SplitServer* split_server = split ? hops.front().server.get() : nullptr;   // the sites' hop
  const std::string split_address = split ? hops.front().address : "";
  std::vector<const split::SplitServer*> split_servers;
  for (const SplitHop& hop : hops) split_servers.push_back(hop.server.get());
  // The server half of the model: every hop's blocks.
  auto server_tensors_now = [&hops] {
    lora::NamedTensors tensors;
    for (const SplitHop& hop : hops) {
      for (auto& [name, tensor] : hop.server->global_adapters().to_named()) tensors[name] = std::move(tensor);
    }
    return tensors;
  };

  // The aggregator, waiting for every site before round 0.
  aggregator::AggregatorOptions options;
  options.rounds = fleet.rounds;
  options.clients_per_round = fleet.clients_per_round > 0 ? fleet.clients_per_round : n_sites;
  options.min_clients = 1;
  options.min_registered = n_sites;
  options.max_registered = std::max<int64_t>(n_sites, 1);
  options.round_deadline_ms = 24 * 3600 * 1000;   // skipped to once the sampled sites are done (FleetClock)
  options.on_deadline = aggregator::OnDeadline::fail;   // no update at all: nothing more will come
  options.poll_interval_ms = 5;
  options.seed = config_.seed;
  options.sampling = fleet.sampling;
  if (fleet.lr_across_rounds) {
    options.client_lr = config_.train.lr;
    options.client_lr_min_ratio = config_.train.min_lr_ratio;
  }
  options.strategy = fleet.strategy;
  options.strategy.lora_aggregation = config_.lora.aggregation;
  options.secure_aggregation = fleet.secure_aggregation;
  if (fleet.secure_aggregation.enabled && !pki) {
    throw std::invalid_argument(
        "federation.secure_aggregation needs the fleet's TLS (secure.insecure: false): sites sign their round keys "
        "with their certificates from the run's CA");
  }
  if (fleet.dp.enabled) {
    // Poisson sampling at the planned share, which is what the accountant assumes.
    options.dp = fleet.dp;
    options.fraction_per_round = static_cast<double>(options.clients_per_round) / static_cast<double>(n_sites);
    options.clients_per_round = 0;
    if (options.dp.noise_seed == 0) options.dp.noise_seed = config_.seed + 0x5DEECE66Dull;   // runs repeat
  }
  if (split) options.split_servers = {split_address};
  const split::SiteBlocks blocks = fleet.site_blocks(model_->n_layers());
  auto clock = std::make_shared<FleetClock>();
  aggregator::AggregatorService service(
      options, aggregator::global_adapters_for_model(*model_, config_.lora, config_.seed, blocks),
      log_.prefixed("aggregator: "), clock,
      [&network](const std::string& endpoint) {
        return network.connect(kAggregatorNode, endpoint, kSplitServerNode);
      });
  ClosedRounds closed;
  service.on_round_closed([&closed, &clock](const aggregator::RoundSummary& summary,
                                           const aggregator::GlobalAdapters&) {
    std::lock_guard<std::mutex> lock(closed.mutex);
    closed.closed.push_back({summary, clock->now_ms()});
    closed.changed.notify_all();
  });
  std::unique_ptr<net::ServerChannel> aggregator_channel =
      network.bind(kAggregatorNode, aggregator::aggregator_policy());
  const std::string aggregator_address = network.address(kAggregatorNode, *aggregator_channel);
  ServeThread aggregator_thread([&](const std::atomic<bool>& stop) {
    service.serve(*aggregator_channel, stop, 5, /*finish_linger_ms=*/0);
  });

  SiteSide sites(model_, data_, config_, log_, pki ? &*pki : nullptr, pki ? &pki->identity(kAggregatorNode) : nullptr);
  SiteContext& context = sites.context;
  SiteCensus& census = sites.census;
  if (context.verifier) service.verify_site_signatures(context.verifier);

  // Registration: an id and a sample count per site, no training state; each
  // site over its own channel, under its own certificate.
  const auto registration_start = SteadyTime::now();
  for (size_t i = 0; i < data_.sites.size(); ++i) {
    if (!joins[i]) continue;
    const SiteData& site = data_.sites[i];
    std::unique_ptr<net::ClientChannel> channel = network.connect(site.id, aggregator_address, kAggregatorNode);
    aggregator::AggregatorLink link(*channel, site.id, site_options(context, site, i).link(), context.log);
    link.register_site(context.base_fingerprint, static_cast<int64_t>(site.train.size()), blocks,
                       config_.site_lora(i));
  }
  const double registration_seconds = seconds_since(registration_start);
  log_.info("registered " + std::to_string(n_sites) + " sites in " + std::to_string(registration_seconds) + " s" +
            (pki ? " (a TLS handshake each)" : ""));
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < data_.sites.size(); ++i) index_of[data_.sites[i].id] = i;

  data::BatchOptions eval_options = config_.batches;
  const std::vector<data::Batch> global_eval = held_out_batches(data_.global_eval, eval_options, config_.eval_batches);
  const std::vector<data::Batch> validation = held_out_batches(data_.validation, eval_options, config_.eval_batches);
  ConvergenceCheck convergence(fleet.stop_patience, fleet.stop_min_improvement);
  const int64_t tokens_per_step = config_.batches.batch_size * config_.batches.seq_len;
  int64_t cumulative_tokens = 0;
  // The other ranks' sites reach the services at these addresses, under the
  // certificates of the run's PKI (on a file system every rank sees).
  other_ranks.send_addresses(aggregator_address + "\n" + split_address + "\n" + (pki ? pki->dir : std::string()));
  const std::function<SiteChannels(size_t)> connect =
      site_connector(network, data_, aggregator_address, split ? split_address : "");

  FleetResult result;
  result.registered = n_sites;
  if (pki) result.pki_dir = pki->dir;
  result.pki_seconds = pki_seconds;
  result.registration_seconds = registration_seconds;
  ChannelBytes before;
  metrics::CostMeter evaluation_cost;
  CostMark cost_before = CostMark::now(split_servers, service, evaluation_cost);
  for (int64_t r = 0; r < fleet.rounds; ++r) {
    const auto round_start = SteadyTime::now();
    service.tick();   // the previous close already opened this round; this waits for it
    if (service.done()) break;
    std::vector<size_t> sampled;
    for (const std::string& id : service.sampled_clients()) sampled.push_back(index_of.at(id));

    const auto train_start = SteadyTime::now();
    std::vector<aggregator::SiteRound> site_rounds;
    if (spread) {
      // Every rank trains its share (k % ranks) of the sampled sites; rank 0 puts the reports back in order.
      std::string plan = round_plan(r, sampled);
      ranks->broadcast(plan);
      const std::vector<aggregator::SiteRound> mine =
          run_sites(context, share_of(sampled, 0, ranks->size()), fleet.workers, connect);
      const std::vector<std::string> reports = ranks->gather(encode_reports(mine));
      site_rounds.resize(sampled.size());
      for (int rank = 0; rank < ranks->size(); ++rank) {
        const std::vector<aggregator::SiteRound> theirs =
            rank == 0 ? mine : decode_reports(reports[static_cast<size_t>(rank)]);
        for (size_t j = 0; j < theirs.size(); ++j) {
          site_rounds.at(static_cast<size_t>(rank) + j * static_cast<size_t>(ranks->size())) = theirs[j];
        }
      }
    } else {
      site_rounds = run_sites(context, sampled, fleet.workers, connect);
    }
    const double train_seconds = seconds_since(train_start);
    bool all_reported = true;
    int64_t round_tokens = 0;
    for (size_t k = 0; k < site_rounds.size(); ++k) {
      if (site_rounds[k].accepted) round_tokens += context.local_steps[sampled[k]] * tokens_per_step;
      if (!site_rounds[k].accepted) {
        all_reported = false;
        log_.warning("round " + std::to_string(r) + ": site " + data_.sites[sampled[k]].id +
                     " sent no accepted update: " + site_rounds[k].error);
      }
    }
    if (!all_reported && service.completed_rounds() == static_cast<uint32_t>(r)) {
      clock->skip(options.round_deadline_ms);
      service.tick();
    }

    ClosedRounds::Closed round_closed;
    {
      std::unique_lock<std::mutex> lock(closed.mutex);
      while (closed.closed.empty()) {
        closed.changed.wait_for(lock, std::chrono::milliseconds(50));
        if (closed.closed.empty() && service.state() == aggregator::RunState::failed) break;
      }
      if (closed.closed.empty()) {
        result.failed = true;
        result.failure = service.failure();
        break;
      }
      round_closed = std::move(closed.closed.front());
      closed.closed.pop_front();
    }
    const aggregator::RoundSummary& summary = round_closed.summary;

    RoundMetrics metrics;
    metrics.round = r + 1;
    metrics.rounds = fleet.rounds;
    metrics.sampled = static_cast<int64_t>(summary.sampled.size());
    metrics.reported = static_cast<int64_t>(summary.reported.size());
    auto loss = summary.metrics.find("train_loss");
    metrics.train_loss = loss == summary.metrics.end() ? 0.0 : loss->second;
    metrics.dp_epsilon = summary.dp_epsilon;
    metrics.lora_truncation_error = summary.lora_truncation_error;
    metrics.aggregation_seconds =
        static_cast<double>(std::max<int64_t>(0, round_closed.callback_ms - summary.closed_ms)) / 1000.0;
    metrics.client_seconds = std::max(0.0, train_seconds - metrics.aggregation_seconds);
    cumulative_tokens += round_tokens;
    metrics.train_tokens = round_tokens;
    metrics.cumulative_train_tokens = cumulative_tokens;

    const auto eval_start = SteadyTime::now();
    const bool last = r + 1 == fleet.rounds;
    if (last || (r + 1) % fleet.eval_every == 0) {
      metrics::PhaseScope evaluating(evaluation_cost, metrics::Phase::forward);
      const lora::NamedTensors server_tensors = split ? server_tensors_now() : lora::NamedTensors{};
      const lora::AdapterSet adapters = lora::combine_split_adapters(*model_, config_.lora, service.global().tensors,
                                                                     split ? &server_tensors : nullptr);
      if (!global_eval.empty()) metrics.eval_perplexity = evaluate(*model_, &adapters, global_eval).perplexity();
      if (!validation.empty()) metrics.validation_perplexity = evaluate(*model_, &adapters, validation).perplexity();
      for (size_t index : sampled) {
        const SiteData& site = data_.sites[index];
        const std::vector<data::Batch> batches =
            held_out_batches(data_.gather(site.eval), eval_options, fleet.client_eval_batches);
        if (!batches.empty()) metrics.client_perplexity[site.id] = evaluate(*model_, &adapters, batches).perplexity();
      }
    }
    metrics.eval_seconds = seconds_since(eval_start);

    SplitCounts split_counts;
    if (split) {
      split_counts.frames = &split_server->bytes();
      split_counts.label_bytes = split_server->label_bytes();
      split_counts.u_shaped = fleet.split_mode == split::SplitMode::u_shaped;
    }
    const ChannelBytes now = channel_bytes(&service.bytes(), split_counts);
    metrics.bytes = now - before;
    metrics.cumulative = now;
    before = now;
    const CostMark cost_now = CostMark::now(split_servers, service, evaluation_cost);
    metrics.cost = round_cost(cost_before, cost_now, site_rounds);
    cost_before = cost_now;
    metrics.round_seconds = seconds_since(round_start);
    metrics.elapsed_seconds = seconds_since(start);
    result.rounds.push_back(metrics);
    if (on_round) on_round(metrics);
    if (metrics.validation_perplexity > 0 && convergence.update(metrics.validation_perplexity)) {
      result.converged_round = r + 1;
      log_.info("converged after round " + std::to_string(r + 1) + ": " + convergence.rule());
      break;
    }
  }
  if (!result.failed && service.state() == aggregator::RunState::failed) {
    result.failed = true;
    result.failure = service.failure();
  }

  aggregator_thread.stop();
  for (SplitHop& hop : hops) hop.thread->stop();
  result.client_adapters = service.global();
  const lora::NamedTensors server_tensors = split ? server_tensors_now() : lora::NamedTensors{};
  if (split) {
    // As one split server's: every block from the sites' cut on.
    result.server_adapters = lora::combine_split_adapters(*model_, config_.lora, {}, &server_tensors)
                                 .subset([&](int64_t layer) { return layer >= fleet.cut_layer; });
  }
  result.adapters = lora::combine_split_adapters(*model_, config_.lora, result.client_adapters.tensors,
                                                 split ? &server_tensors : nullptr);
  result.sites_instantiated = census.created();
  result.peak_live_sites = census.peak();
  result.processes = spread ? ranks->size() : 1;
  return result;
}

void Fleet::serve_rank(FleetRanks& ranks) {
  const FleetOptions& fleet = config_.fleet;
  std::string addresses;   // "aggregator\nsplit server\nPKI directory", or "" when rank 0 failed first
  ranks.broadcast(addresses);
  if (addresses.empty()) return;
  std::istringstream lines(addresses);
  std::string aggregator_address, split_address, pki_dir;
  std::getline(lines, aggregator_address);
  std::getline(lines, split_address);
  std::getline(lines, pki_dir);
  std::optional<FleetPki> pki;
  if (!pki_dir.empty()) {
    std::vector<std::string> site_ids;
    for (const SiteData& site : data_.sites) site_ids.push_back(site.id);
    pki = read_fleet_pki(pki_dir, site_ids);
  }
  FleetNetwork network(FleetTransport::tcp, pki ? &*pki : nullptr, log_, config_.handshake_timeout_ms);
  const secure::TlsIdentity* verifier = pki && !data_.sites.empty() ? &pki->identity(data_.sites.front().id) : nullptr;
  SiteSide sites(model_, data_, config_, log_, pki ? &*pki : nullptr, verifier);
  const std::function<SiteChannels(size_t)> connect =
      site_connector(network, data_, aggregator_address, fleet.mode == FleetMode::split ? split_address : "");
  log_.info(ranks.describe() + ": training this rank's share of each round's sites against the aggregator at " +
            aggregator_address);
  while (true) {
    std::string plan;
    ranks.broadcast(plan);
    if (plan == "done") break;
    std::istringstream words(plan);
    std::string word;
    int64_t round = 0;
    words >> word >> round;
    std::vector<size_t> sampled;
    for (size_t index = 0; words >> index;) sampled.push_back(index);
    const std::vector<aggregator::SiteRound> mine =
        run_sites(sites.context, share_of(sampled, ranks.rank(), ranks.size()), fleet.workers, connect);
    log_.info("round " + std::to_string(round) + ": " + std::to_string(mine.size()) + " of " +
              std::to_string(sampled.size()) + " sampled sites trained on this rank");
    ranks.gather(encode_reports(mine));
  }
  // What this rank held: site instances live only for their round.
  log_.info("done: " + std::to_string(sites.census.created()) + " site instances made on this rank, at most " +
            std::to_string(sites.census.peak()) + " alive at once, for " + std::to_string(data_.sites.size()) +
            " registered sites");
}

}  // namespace cleave::simulate
