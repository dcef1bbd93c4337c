#include "aggregator/aggregator_service.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "aggregator/aggregation.h"
#include "aggregator/aggregator_checkpoint.h"
#include "aggregator/aggregator_metrics.h"
#include "aggregator/client_sampling.h"
#include "aggregator/dp_fedavg.h"
#include "aggregator/named_tensors_wire.h"
#include "aggregator/removed_sites.h"
#include "aggregator/secure_encoding.h"
#include "secagg/aggregator_session.h"
#include "transport/request_retry.h"
#include "transport/serve_loop.h"
#include "transport/zmq_channel.h"

namespace cleave::aggregator {

const char* run_state_name(RunState state) {
  switch (state) {
    case RunState::waiting_for_clients: return "waiting_for_clients";
    case RunState::in_round: return "in_round";
    case RunState::finished: return "finished";
    case RunState::failed: return "failed";
  }
  return "unknown";
}

// The global adapters at one lora rank and alpha, as the sites at it start a round.
struct AggregatorService::SiteStart {
  NamedTensors tensors;                          // what their deltas are checked against
  WireTensors adapters;                          // what their assignments carry
};

struct AggregatorService::OpenRound {
  uint32_t round = 0;
  std::set<std::string> sampled;
  std::map<std::string, ClientUpdate> updates;   // accepted, by client id
  std::set<std::string> failed;                  // sent an invalid update: done for this round
  // The global adapters per lora rank and alpha of the sites asking ({0, 0}:
  // the global's own), encoded once per round.
  std::map<SiteLora, SiteStart> starts;
  RoundConfig config;
  int64_t deadline_ms = 0;
  int64_t registered = 0;                        // sites registered when it started (DP's denominator)
  std::unique_ptr<secagg::AggregatorSession> secure;   // under secure aggregation
  RoundSummary summary;

  bool all_done() const { return updates.size() + failed.size() >= sampled.size(); }
};

namespace {

bool valid_client_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string joined(const std::set<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

// Why the metrics a site reports with its update are refused; nullopt when they are fine.
std::optional<std::string> metrics_problem(const std::map<std::string, double>& metrics) {
  for (const auto& [key, value] : metrics) {
    if (!std::isfinite(value) || key.empty() || key.size() > 64) {
      return "metric '" + key + "' is not a finite number with a name of 1..64 characters";
    }
  }
  return std::nullopt;
}

// A round's metrics into its summary: each site's as reported, and their mean
// weighted by the sites' sample counts.
class MetricsMean {
 public:
  explicit MetricsMean(RoundSummary& summary) : summary_(summary) {}
  void add(const std::string& id, const std::map<std::string, double>& metrics, double weight) {
    summary_.client_metrics[id] = metrics;
    for (const auto& [key, value] : metrics) {
      summary_.metrics[key] += value * weight;
      weight_[key] += weight;
    }
  }
  void finish() {
    for (auto& [key, value] : summary_.metrics) value /= weight_[key];
  }

 private:
  RoundSummary& summary_;
  std::map<std::string, double> weight_;
};

}  // namespace

AggregatorService::AggregatorService(AggregatorOptions options, GlobalAdapters initial, Log log,
                                     std::shared_ptr<const Clock> clock, ChannelFactory split_channels)
    : options_(std::move(options)), log_(std::move(log)), clock_(std::move(clock)) {
  options_.validate();
  if (!clock_) clock_ = std::make_shared<SteadyClock>();
  if (initial.tensors.empty()) {
    throw std::invalid_argument("the aggregator needs initial global adapters (from an adapter GGUF or the base model)");
  }
  strategy_ = make_strategy(options_.strategy);
  global_ = std::move(initial);
  if (options_.dp.enabled) {
    dp_ = std::make_unique<DpFedAvg>(options_.dp, options_.fraction_per_round, options_.rounds);
    log_.info("dp: sites Poisson-sampled at rate " + std::to_string(dp_->sampling_rate()) + ", deltas clipped to " +
              std::to_string(options_.dp.clip_norm) + ", noise multiplier " + std::to_string(dp_->noise_multiplier()) +
              (options_.dp.noise_multiplier > 0
                   ? std::string()
                   : " (calibrated: epsilon " + std::to_string(options_.dp.target_epsilon) + " after " +
                         std::to_string(options_.rounds) + " rounds)") +
              ", delta " + std::to_string(options_.dp.delta) +
              (options_.dp.noise_seed != 0 ? "; noise from a fixed seed: for experiments only" : ""));
  }
  if (options_.secure_aggregation.enabled) {
    const SecureAggregationOptions& secure = options_.secure_aggregation;
    log_.info("secure aggregation: this aggregator learns only each round's sum; a round needs more than " +
              std::to_string(secure.threshold) + " of its sampled sites (and at least " +
              std::to_string(secure.min_sites) + ") through every phase, phases wait " +
              std::to_string(secure.phase_timeout_ms) + " ms; fixed point 2^-" +
              std::to_string(secure.scale_bits) + ", coordinates clipped to +/-" + std::to_string(secure.clip_range) +
              ", weights capped at " + std::to_string(secure.weight_cap) +
              (dp_ ? (options_.dp.distributed_noise ? "; dp noise added by the sites" : "; dp noise added here")
                   : std::string()));
  }
  if (!split_channels) {
    const net::ChannelOptions channel_options;
    split_channels = [channel_options](const std::string& endpoint) {
      return net::zmq_connect(endpoint, channel_options);
    };
  }
  SplitCloseOptions close_options;
  close_options.timeout_ms = options_.split_timeout_ms;
  close_options.max_attempts = options_.split_max_attempts;
  close_options.backoff_ms = options_.split_backoff_ms;
  close_options.log = log_;
  close_options.strategy = strategy_signature(options_.strategy);
  for (const std::string& endpoint : options_.split_servers) {
    split_closers_.push_back(std::make_unique<ChannelSplitRoundCloser>(split_channels(endpoint), close_options));
  }
  if (!options_.checkpoint_dir.empty()) {
    if (std::optional<AggregatorCheckpoint> checkpoint = load_checkpoint(options_.checkpoint_dir)) {
      resume_from(*checkpoint);
    }
  }
  if (completed_ >= options_.rounds) {
    state_ = RunState::finished;
    done_at_ms_ = clock_->now_ms();
  }
}

AggregatorService::~AggregatorService() = default;

void AggregatorService::resume_from(const AggregatorCheckpoint& checkpoint) {
  const std::string where = "checkpoint in " + options_.checkpoint_dir + ": ";
  if (checkpoint.strategy != strategy_->name()) {
    throw std::runtime_error(where + "written by strategy " + checkpoint.strategy + " but this run uses " +
                             strategy_->name() + "; use another checkpoint_dir or the same strategy");
  }
  if (checkpoint.seed != options_.seed) {
    throw std::runtime_error(where + "written with seed " + std::to_string(checkpoint.seed) +
                             " but this run has seed " + std::to_string(options_.seed) +
                             "; client sampling would not continue the same way");
  }
  if (checkpoint.global.base_fingerprint != global_.base_fingerprint) {
    throw std::runtime_error(where + "adapters for base (" + checkpoint.global.base_fingerprint +
                             ") but this run's base is (" + global_.base_fingerprint + ")");
  }
  if (checkpoint.global.blocks && global_.blocks && *checkpoint.global.blocks != *global_.blocks) {
    throw std::runtime_error(where + "adapters for sites running " + checkpoint.global.blocks->describe() +
                             " but this run's sites run " + global_.blocks->describe() +
                             "; use another checkpoint_dir or the checkpoint's split layout");
  }
  for (const auto& [name, tensor] : global_.tensors) {
    auto it = checkpoint.global.tensors.find(name);
    if (it == checkpoint.global.tensors.end() || it->second.sizes() != tensor.sizes()) {
      throw std::runtime_error(where + "adapter tensor " + name +
                               " is missing or shaped differently: were lora or cut_layer changed?");
    }
  }
  if (checkpoint.global.tensors.size() != global_.tensors.size()) {
    throw std::runtime_error(where + "has " + std::to_string(checkpoint.global.tensors.size()) +
                             " adapter tensors, this run " + std::to_string(global_.tensors.size()));
  }
  strategy_->load_state(checkpoint.strategy_state);
  global_.tensors = checkpoint.global.tensors;
  registered_ = checkpoint.registered;
  site_lora_.clear();
  for (const auto& [id, lora] : checkpoint.site_lora) {
    if (!registered_.count(id)) continue;
    if (options_.strategy.lora_aggregation != lora::LoraAggregation::product || lora.rank < 1 ||
        lora.rank > global_.lora.rank || !(lora.alpha > 0)) {
      throw std::runtime_error(where + "site " + id + " registered at lora.rank " + std::to_string(lora.rank) +
                               ", alpha " + std::to_string(lora.alpha) + ", which this run (lora.rank " +
                               std::to_string(global_.lora.rank) + ", lora.aggregation " +
                               lora::aggregation_name(options_.strategy.lora_aggregation) +
                               ") cannot serve: resume with the checkpoint's lora settings (product)");
    }
    site_lora_[id] = lora;
  }
  completed_ = checkpoint.completed_rounds;
  last_round_sites_ = split::RoundSites{checkpoint.last_round_sites, checkpoint.last_round_weights};
  if (dp_) {
    if (checkpoint.dp_rdp.empty() && completed_ > 0) {
      throw std::runtime_error(where + "written without aggregator.dp: the privacy its " + std::to_string(completed_) +
                               " rounds spent is not known; start a new checkpoint_dir");
    }
    if (!checkpoint.dp_rdp.empty()) dp_->restore(checkpoint.dp_rdp, checkpoint.dp_rounds);
  } else if (!checkpoint.dp_rdp.empty()) {
    throw std::runtime_error(where + "written with aggregator.dp: resume it with the same dp settings");
  }
  log_.info("resumed from " + options_.checkpoint_dir + " after round " + std::to_string(completed_) + " with " +
            std::to_string(registered_.size()) + " registered clients");
}

void AggregatorService::add_split_round_closer(std::unique_ptr<SplitRoundCloser> closer) {
  std::lock_guard<std::mutex> lock(mutex_);
  split_closers_.push_back(std::move(closer));
}

void AggregatorService::verify_site_signatures(std::shared_ptr<const secagg::KeyVerifier> verifier) {
  std::lock_guard<std::mutex> lock(mutex_);
  verifier_ = std::move(verifier);   // from the next round on
  if (verifier_) log_.info("secure aggregation: the sites' signatures are checked here as well as at every site");
}

void AggregatorService::export_metrics(metrics::Registry& registry) {
  std::lock_guard<std::mutex> lock(mutex_);
  metrics_ = std::make_unique<AggregatorMetrics>(registry, bytes_);
  publish_metrics();
}

void AggregatorService::publish_metrics() {
  if (!metrics_) return;
  const int64_t sampled = round_ ? static_cast<int64_t>(round_->sampled.size()) : 0;
  const int64_t reported = round_ ? static_cast<int64_t>(round_->updates.size()) : 0;
  metrics_->publish(state_, round_ ? round_->round : completed_, static_cast<int64_t>(registered_.size()), sampled,
                    reported);
}

void AggregatorService::on_round_closed(RoundCallback callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  round_callback_ = std::move(callback);
}

void AggregatorService::remove_site(const std::string& client_id, const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    remove_site_locked(client_id, why, clock_->now_ms());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  publish_metrics();
}

void AggregatorService::allow_site(const std::string& client_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (removed_.erase(client_id)) log_.info("site " + client_id + " may register again");
}

void AggregatorService::watch_removed_sites(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  removed_file_ = std::make_unique<RemovedSitesFile>(path);
  read_removed_sites_file(clock_->now_ms(), true);
  log_.info("sites listed in " + path + " are kept out of the federation (" + std::to_string(removed_by_file_.size()) +
            " listed now; the file is re-read when it changes)");
  publish_metrics();
}

std::vector<std::string> AggregatorService::removed_sites() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, why] : removed_) ids.push_back(id);
  return ids;
}

void AggregatorService::remove_site_locked(const std::string& client_id, const std::string& why, int64_t now) {
  if (removed_.count(client_id)) return;   // the first reason stands
  removed_[client_id] = why;
  const bool was_registered = registered_.erase(client_id) > 0;
  site_lora_.erase(client_id);
  std::string in_round;
  if (round_ && round_->sampled.erase(client_id)) {
    const bool had_update = round_->updates.erase(client_id) > 0;
    round_->failed.erase(client_id);
    if (round_->secure) round_->secure->on_withdraw(secagg::Withdraw{client_id, round_->round, why});
    const size_t waiting = round_->sampled.size() - std::min(round_->sampled.size(),
                                                             round_->updates.size() + round_->failed.size());
    in_round = "; it was sampled in round " + std::to_string(round_->round) +
               (had_update ? " (its update there is dropped)" : std::string()) + ", which now waits for " +
               std::to_string(waiting) + " more of its " + std::to_string(round_->sampled.size()) + " sampled sites";
  }
  log_.warning("site " + client_id + " taken out of the federation: " + why +
               (was_registered ? std::string() : " (it was not registered)") + in_round);
  advance(now);
}

void AggregatorService::read_removed_sites_file(int64_t now, bool at_start) {
  std::optional<RemovedSitesList> list;
  try {
    list = removed_file_->read_if_changed();
  } catch (const std::runtime_error& e) {
    if (at_start) throw;
    log_.warning(std::string("the removed sites stay as they were: ") + e.what());   // once per change of the file
  }
  if (!list) return;
  for (const std::string& problem : list->problems) log_.warning(problem);
  const std::string why = "removed by the operator (listed in " + removed_file_->path() +
                          "; deleting the line lets it register again)";
  for (const std::string& id : removed_by_file_) {
    auto it = removed_.find(id);
    if (list->sites.count(id) || it == removed_.end() || it->second != why) continue;
    removed_.erase(it);
    log_.info("site " + id + " is no longer listed in " + removed_file_->path() + ": it may register again");
  }
  removed_by_file_ = list->sites;
  for (const std::string& id : removed_by_file_) remove_site_locked(id, why, now);
}

void AggregatorService::refuse_if_removed(const std::string& client_id) const {
  auto it = removed_.find(client_id);
  if (it != removed_.end()) {
    throw std::invalid_argument("site " + client_id + " may not take part in this federation: " + it->second);
  }
}

net::Bytes AggregatorService::reply_frame(net::Bytes frame) {
  bytes_.add(message_name(peek_message(frame)), wire::Direction::sent, frame.size());
  return frame;
}

net::Bytes AggregatorService::handle(const net::PeerId& peer, const net::Bytes& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  metrics::PhaseScope role(cost_, metrics::Phase::wire);   // codecs and aggregation nest inside
  struct Publish {
    AggregatorService& service;
    ~Publish() { service.publish_metrics(); }
  } publish{*this};
  try {
    const FederationMessage type = peek_message(request);
    bytes_.add(message_name(type), wire::Direction::received, request.size());
    const int64_t now = clock_->now_ms();
    advance(now);
    switch (type) {
      case FederationMessage::register_client: return on_register(request);
      case FederationMessage::round_request: return on_round_request(request, now);
      case FederationMessage::update: return on_update(request, now);
      case FederationMessage::secagg_keys:
      case FederationMessage::secagg_poll:
      case FederationMessage::secagg_shares:
      case FederationMessage::secagg_masked_input:
      case FederationMessage::secagg_consistency_signature:
      case FederationMessage::secagg_unmask_shares:
      case FederationMessage::secagg_withdraw: return on_secure(type, request, now);
      default:
        throw wire::WireError(std::string("unexpected message type ") + message_name(type) +
                              " at the aggregator (expected register, round_request, update or secagg_*)");
    }
  } catch (const std::exception& e) {
    log_.warning("rejected a request from peer " + std::to_string(std::hash<std::string>{}(peer) % 100000) + ": " +
                 e.what());
    return reply_frame(pack_message(FederationMessage::error, FederationErrorReply{e.what()}));
  }
}

net::Bytes AggregatorService::on_register(const net::Bytes& request) {
  const auto hello = unpack_message<Register>(request, FederationMessage::register_client, options_.max_message_bytes);
  if (!valid_client_id(hello.client_id)) {
    throw std::invalid_argument("client id must be 1..128 printable characters without spaces");
  }
  refuse_if_removed(hello.client_id);
  if (hello.base_fingerprint != global_.base_fingerprint) {
    throw std::invalid_argument("client " + hello.client_id + " runs base model (" + hello.base_fingerprint +
                                ") but this federation trains adapters for (" + global_.base_fingerprint +
                                "): load the same base GGUF");
  }
  if (hello.num_samples < 0) throw std::invalid_argument("num_samples must be >= 0");
  const split::SiteBlocks blocks{static_cast<split::SiteLayout>(hello.layout), hello.cut_layer, hello.top_cut};
  if (global_.blocks && blocks != *global_.blocks) {
    throw std::invalid_argument("client " + hello.client_id + " runs " + blocks.describe() +
                                " but this federation's sites run " + global_.blocks->describe() +
                                ": set the site's split.mode, split.cut_layer and split.top_cut to the "
                                "federation's");
  }
  const std::optional<SiteLora> lora = registered_lora(hello);
  const std::string lora_note = lora ? "lora rank " + std::to_string(lora->rank) + ", alpha " +
                                           std::to_string(lora->alpha) + " of the global's rank " +
                                           std::to_string(global_.lora.rank) + ", "
                                     : std::string();
  auto known = registered_.find(hello.client_id);
  if (known == registered_.end()) {
    if (static_cast<int64_t>(registered_.size()) >= options_.max_registered) {
      throw std::invalid_argument("the federation is full (" + std::to_string(options_.max_registered) +
                                  " registered clients, aggregator.max_registered)");
    }
    registered_[hello.client_id] = hello.num_samples;
    log_.info("client " + hello.client_id + " registered (" + std::to_string(hello.num_samples) + " samples, " +
              lora_note + std::to_string(registered_.size()) + " registered)");
  } else {
    known->second = hello.num_samples;   // a reconnecting site: same id; its rank may have changed
    auto had = site_lora_.find(hello.client_id);
    if ((had == site_lora_.end()) != !lora || (lora && !(had->second == *lora))) {
      log_.info("client " + hello.client_id + " registered again with another lora rank or alpha (" +
                (lora ? lora_note : "the global's, ") + "from its next assignment on)");
    }
  }
  if (lora) {
    site_lora_[hello.client_id] = *lora;
  } else {
    site_lora_.erase(hello.client_id);
  }
  advance(clock_->now_ms());
  RegisterReply reply;
  reply.round = round_ ? round_->round : completed_;
  reply.total_rounds = static_cast<uint32_t>(options_.rounds);
  return reply_frame(pack_message(FederationMessage::register_reply, reply));
}

std::optional<SiteLora> AggregatorService::registered_lora(const Register& hello) const {
  const lora::LoraOptions& global = global_.lora;
  if (hello.lora_rank < 0 || !std::isfinite(hello.lora_alpha) || hello.lora_alpha < 0) {
    throw std::invalid_argument("client " + hello.client_id + " sent lora rank " + std::to_string(hello.lora_rank) +
                                " and alpha " + std::to_string(hello.lora_alpha) +
                                ": expected >= 0 (0: the aggregator's)");
  }
  const SiteLora site{hello.lora_rank > 0 ? hello.lora_rank : global.rank,
                      hello.lora_alpha > 0 ? hello.lora_alpha : global.alpha};
  if (site.rank == global.rank && site.alpha == global.alpha) return std::nullopt;
  const std::string what = "client " + hello.client_id + " trains at lora.rank " + std::to_string(site.rank) +
                           ", lora.alpha " + std::to_string(site.alpha) + " but this federation's global adapters "
                           "have lora.rank " + std::to_string(global.rank) + ", lora.alpha " +
                           std::to_string(global.alpha);
  if (site.rank > global.rank) {
    throw std::invalid_argument(what + ": a site's rank must be at most the aggregator's (it is handed the global "
                                       "truncated to its rank); lower the site's lora.rank or raise the "
                                       "aggregator's");
  }
  if (options_.strategy.lora_aggregation != lora::LoraAggregation::product) {
    throw std::invalid_argument(what + ": heterogeneous ranks need lora.aggregation: product (at the aggregator "
                                       "and every site; lora.aggregation is " +
                                lora::aggregation_name(options_.strategy.lora_aggregation) +
                                "), or set the site's lora.rank and lora.alpha to the federation's");
  }
  return site;
}

std::pair<int64_t, double> AggregatorService::site_rank_and_scale(const std::string& client_id) const {
  auto it = site_lora_.find(client_id);
  if (it == site_lora_.end()) return {0, 1.0};
  lora::LoraOptions site = global_.lora;
  site.rank = it->second.rank;
  site.alpha = it->second.alpha;
  return {site.rank, site.scale() / global_.lora.scale()};
}

const AggregatorService::SiteStart& AggregatorService::site_start(const std::string& client_id) {
  auto known = site_lora_.find(client_id);
  const SiteLora key = known == site_lora_.end() ? SiteLora{} : known->second;
  auto it = round_->starts.find(key);
  if (it != round_->starts.end()) return it->second;
  // Right after initialisation the global is not in product_mean's SVD form
  // (B is zero for fresh adapters, so the truncation is exact then; adapters
  // loaded from a file are a valid start, only not the best rank-r one): the
  // first product round puts it in that form.
  const auto [rank, scale] = site_rank_and_scale(client_id);
  SiteStart start;
  start.tensors = global_for_site(global_.tensors, rank, scale);
  start.adapters = encode_tensors(start.tensors);
  return round_->starts.emplace(key, std::move(start)).first->second;
}

net::Bytes AggregatorService::on_round_request(const net::Bytes& request, int64_t now) {
  const auto poll = unpack_message<RoundRequest>(request, FederationMessage::round_request, options_.max_message_bytes);
  refuse_if_removed(poll.client_id);
  if (!registered_.count(poll.client_id)) {
    throw std::invalid_argument("client " + poll.client_id + " is not registered: send Register first");
  }
  if (state_ == RunState::finished || state_ == RunState::failed) {
    told_finished_.insert(poll.client_id);
    const Finished finished{completed_, state_ == RunState::failed, failure_};
    return reply_frame(pack_message(FederationMessage::finished, finished));
  }
  const bool assignable =
      round_ && (!round_->secure || (round_->secure->state() == secagg::SessionState::keys &&
                                     !round_->secure->sent_keys(poll.client_id)));
  if (assignable && round_->sampled.count(poll.client_id) && !round_->updates.count(poll.client_id) &&
      !round_->failed.count(poll.client_id)) {
    RoundAssignment assignment;
    if (round_->secure) assignment.secure = round_->secure->params();
    assignment.round = round_->round;
    assignment.adapters = site_start(poll.client_id).adapters;
    assignment.config = round_->config;
    assignment.deadline_ms = std::max<int64_t>(0, round_->deadline_ms - now);
    return reply_frame(pack_message(FederationMessage::round_assignment, assignment));
  }
  const Wait wait{static_cast<uint32_t>(options_.poll_interval_ms)};
  return reply_frame(pack_message(FederationMessage::wait, wait));
}

net::Bytes AggregatorService::on_secure(FederationMessage type, const net::Bytes& request, int64_t now) {
  const size_t max_bytes = options_.max_message_bytes;
  // The open round's session if `client_id` may speak in round `round`; else why not.
  std::string refusal;
  auto session = [&](const std::string& client_id, uint32_t round) -> secagg::AggregatorSession* {
    if (auto removed = removed_.find(client_id); removed != removed_.end()) {
      refusal = "site " + client_id + " may not take part in this federation: " + removed->second;
    } else if (!registered_.count(client_id)) {
      refusal = "client " + client_id + " is not registered";
    } else if (!round_ || round_->round != round) {
      refusal = "round " + std::to_string(round) + " is not open" +
                (round_ ? " (the open round is " + std::to_string(round_->round) + ")" : std::string());
    } else if (!round_->secure) {
      refusal = "round " + std::to_string(round) + " does not use secure aggregation";
    } else {
      return round_->secure.get();
    }
    return nullptr;
  };
  auto ack = [&](const std::string& client_id, uint32_t round, const std::string& why) {
    if (!why.empty()) {
      log_.warning("round " + std::to_string(round) + ": refused " + message_name(type) + " from " + client_id +
                   ": " + why);
      if (round_ && round_->round == round) round_->summary.rejected.push_back(Rejection{client_id, round, why});
    }
    advance(now);
    return reply_frame(pack_message(FederationMessage::update_ack, UpdateAck{round, why.empty(), why}));
  };
  switch (type) {
    case FederationMessage::secagg_keys: {
      const auto keys = unpack_message<secagg::Keys>(request, type, max_bytes);
      secagg::AggregatorSession* s = session(keys.client_id, keys.round);
      return ack(keys.client_id, keys.round, s ? s->on_keys(keys) : refusal);
    }
    case FederationMessage::secagg_shares: {
      const auto shares = unpack_message<secagg::Shares>(request, type, max_bytes);
      secagg::AggregatorSession* s = session(shares.client_id, shares.round);
      return ack(shares.client_id, shares.round, s ? s->on_shares(shares) : refusal);
    }
    case FederationMessage::secagg_masked_input: {
      auto input = unpack_message<secagg::MaskedInput>(request, type, max_bytes);
      const std::string client_id = input.client_id;
      const uint32_t round = input.round;
      secagg::AggregatorSession* s = session(client_id, round);
      if (s) {
        const std::string why = s->on_masked_input(std::move(input));
        if (why.empty()) {
          log_.info("round " + std::to_string(round) + ": masked input from " + client_id + " (" +
                    std::to_string(s->survivors().size()) + "/" + std::to_string(round_->sampled.size()) + ")");
        }
        return ack(client_id, round, why);
      }
      return ack(client_id, round, refusal);
    }
    case FederationMessage::secagg_withdraw: {
      const auto withdraw = unpack_message<secagg::Withdraw>(request, type, max_bytes);
      secagg::AggregatorSession* s = session(withdraw.client_id, withdraw.round);
      const std::string why = s ? s->on_withdraw(withdraw) : refusal;
      if (why.empty()) {
        log_.warning("round " + std::to_string(withdraw.round) + ": " + withdraw.client_id +
                     " withdrew: " + withdraw.reason.substr(0, 300));
      }
      return ack(withdraw.client_id, withdraw.round, why);
    }
    case FederationMessage::secagg_consistency_signature: {
      const auto signature = unpack_message<secagg::ConsistencySignature>(request, type, max_bytes);
      secagg::AggregatorSession* s = session(signature.client_id, signature.round);
      return ack(signature.client_id, signature.round, s ? s->on_consistency_signature(signature) : refusal);
    }
    case FederationMessage::secagg_unmask_shares: {
      const auto shares = unpack_message<secagg::UnmaskShares>(request, type, max_bytes);
      secagg::AggregatorSession* s = session(shares.client_id, shares.round);
      return ack(shares.client_id, shares.round, s ? s->on_unmask_shares(shares) : refusal);
    }
    default: {
      const auto poll = unpack_message<secagg::Poll>(request, FederationMessage::secagg_poll, max_bytes);
      secagg::AggregatorSession* s = session(poll.client_id, poll.round);
      if (!s) return reply_frame(pack_message(FederationMessage::secagg_abort, secagg::Abort{poll.round, refusal}));
      const secagg::PollAnswer answer = s->poll(poll);
      if (answer.peer_keys) return reply_frame(pack_message(FederationMessage::secagg_peer_keys, *answer.peer_keys));
      if (answer.peer_shares) {
        return reply_frame(pack_message(FederationMessage::secagg_peer_shares, *answer.peer_shares));
      }
      if (answer.consistency) {
        return reply_frame(pack_message(FederationMessage::secagg_consistency_check, *answer.consistency));
      }
      if (answer.unmask) return reply_frame(pack_message(FederationMessage::secagg_unmask_request, *answer.unmask));
      if (answer.abort) return reply_frame(pack_message(FederationMessage::secagg_abort, *answer.abort));
      const Wait wait{static_cast<uint32_t>(std::min<int64_t>(options_.poll_interval_ms, 200))};
      return reply_frame(pack_message(FederationMessage::wait, wait));
    }
  }
}

net::Bytes AggregatorService::on_update(const net::Bytes& request, int64_t now) {
  auto update = unpack_message<Update>(request, FederationMessage::update, options_.max_message_bytes);
  auto reject = [&](RejectReason why, const std::string& reason, bool client_done) {
    if (metrics_) metrics_->rejected(why);
    const Rejection rejection{update.client_id, update.round, reason};
    log_.warning("rejected the update of client " + update.client_id + " for round " + std::to_string(update.round) +
                 ": " + reason);
    const bool for_open_round = round_ && update.round == round_->round;
    if (for_open_round) {
      round_->summary.rejected.push_back(rejection);
      if (client_done && round_->sampled.count(update.client_id)) round_->failed.insert(update.client_id);
    } else if (update.round < completed_) {
      late_rejections_.push_back(rejection);
      if (late_rejections_.size() > kHistoryRounds) late_rejections_.pop_front();
    }
    const UpdateAck ack{update.round, false, reason};
    net::Bytes frame = reply_frame(pack_message(FederationMessage::update_ack, ack));
    if (for_open_round && round_->all_done()) advance(now);
    return frame;
  };

  if (auto removed = removed_.find(update.client_id); removed != removed_.end()) {
    return reject(RejectReason::not_registered,
                  "site " + update.client_id + " may not take part in this federation: " + removed->second, false);
  }
  if (!registered_.count(update.client_id)) {
    return reject(RejectReason::not_registered, "client " + update.client_id + " is not registered", false);
  }
  if (!round_ || update.round != round_->round) {
    if (update.round < completed_) {
      return reject(RejectReason::late, "late update: round " + std::to_string(update.round) + " is closed (" +
                        std::to_string(completed_) + " rounds completed)",
                    false);
    }
    return reject(RejectReason::no_open_round, "no round " + std::to_string(update.round) + " is open" +
                      (round_ ? " (the open round is " + std::to_string(round_->round) + ")" : std::string()),
                  false);
  }
  if (!round_->sampled.count(update.client_id)) {
    return reject(RejectReason::not_sampled, "client " + update.client_id + " was not sampled in round " + std::to_string(update.round), false);
  }
  if (round_->secure) {
    return reject(RejectReason::secure_round, "round " + std::to_string(update.round) +
                      " uses secure aggregation: an update in the clear is refused (the site must follow the "
                      "assignment's secure parameters)",
                  true);
  }
  if (round_->updates.count(update.client_id)) {
    return reject(RejectReason::duplicate, "duplicate update: client " + update.client_id + " already reported in round " +
                      std::to_string(update.round),
                  false);
  }
  if (round_->failed.count(update.client_id)) {
    return reject(RejectReason::after_invalid, "client " + update.client_id + " already sent an invalid update in round " +
                      std::to_string(update.round),
                  false);
  }
  if (update.num_samples <= 0) {
    return reject(RejectReason::invalid, "num_samples is " + std::to_string(update.num_samples) + ", expected > 0", true);
  }
  if (std::optional<std::string> problem = metrics_problem(update.metrics)) return reject(RejectReason::invalid, *problem, true);
  ClientUpdate accepted;
  accepted.client_id = update.client_id;
  accepted.num_samples = update.num_samples;
  accepted.metrics = update.metrics;
  std::tie(accepted.lora_rank, accepted.lora_scale) = site_rank_and_scale(update.client_id);
  const NamedTensors& start = site_start(update.client_id).tensors;   // the global at the site's rank
  try {
    accepted.delta = decode_tensors(update.delta, start, "delta of client " + update.client_id);
  } catch (const wire::WireError& e) {
    return reject(RejectReason::invalid, e.what(), true);
  }
  if (std::optional<std::string> problem = validate_update(accepted, start)) {
    return reject(RejectReason::invalid, *problem, true);
  }
  if (options_.strategy.lora_aggregation == lora::LoraAggregation::ffa) {
    if (std::optional<std::string> problem = trained_frozen_a(accepted)) return reject(RejectReason::invalid, *problem, true);
  }
  round_->updates[update.client_id] = std::move(accepted);
  log_.info("round " + std::to_string(update.round) + ": update from " + update.client_id + " (" +
            std::to_string(round_->updates.size()) + "/" + std::to_string(round_->sampled.size()) + ")");
  const uint32_t round = round_->round;
  net::Bytes frame = reply_frame(pack_message(FederationMessage::update_ack, UpdateAck{round, true, ""}));
  advance(now);
  return frame;
}

void AggregatorService::tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  metrics::PhaseScope role(cost_, metrics::Phase::wire);
  try {
    if (removed_file_) read_removed_sites_file(clock_->now_ms(), false);
    advance(clock_->now_ms());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  publish_metrics();
}

void AggregatorService::advance(int64_t now) {
  if (state_ == RunState::finished || state_ == RunState::failed) return;
  if (!round_) {
    // Round 0 waits for the registrations asked for; a later round starts at
    // once with enough sites to close it, so that removing sites
    // (remove_site) cannot stall the federation.
    const int64_t to_start =
        completed_ == 0 ? options_.registrations_to_start() : std::max<int64_t>(options_.min_clients, 1);
    if (static_cast<int64_t>(registered_.size()) >= to_start) start_round(now);
    return;
  }
  if (round_->secure) {
    // The protocol's phases and deadlines decide; a failed session closes the round without an update.
    round_->secure->advance(now);
    const secagg::SessionState session = round_->secure->state();
    if (session == secagg::SessionState::done || session == secagg::SessionState::failed) close_round(now);
    return;
  }
  // Under DP a round closes with whichever sampled sites reported, none included.
  const int64_t needed = dp_ ? 0 : options_.min_clients;
  if (round_->all_done() && static_cast<int64_t>(round_->updates.size()) >= needed) {
    close_round(now);
    return;
  }
  while (round_ && now >= round_->deadline_ms) {
    const int64_t accepted = static_cast<int64_t>(round_->updates.size());
    if (accepted >= needed) {
      log_.info("round " + std::to_string(round_->round) + " deadline: closing with " + std::to_string(accepted) +
                " of " + std::to_string(round_->sampled.size()) + " sampled clients");
      close_round(now);
      return;
    }
    const std::string shortfall = "round " + std::to_string(round_->round) + " has " + std::to_string(accepted) +
                                  " accepted updates at its deadline, min_clients is " +
                                  std::to_string(options_.min_clients);
    if (options_.on_deadline == OnDeadline::extend && round_->summary.extensions < options_.max_extensions) {
      ++round_->summary.extensions;
      round_->deadline_ms += options_.round_deadline_ms;
      log_.warning(shortfall + ": extending it by " + std::to_string(options_.round_deadline_ms) + " ms (extension " +
                   std::to_string(round_->summary.extensions) + " of " + std::to_string(options_.max_extensions) + ")");
      continue;
    }
    fail(shortfall + (options_.on_deadline == OnDeadline::extend
                          ? " after " + std::to_string(options_.max_extensions) + " extensions"
                          : std::string()) +
         "; the checkpoint of the last completed round is kept for a restart");
  }
}

void AggregatorService::start_round(int64_t now) {
  if (resync_split_) {
    resync_split_ = false;
    sync_split_servers();
    if (state_ == RunState::failed) return;
  }
  if (dp_ && options_.dp.target_epsilon > 0 && dp_->epsilon_after_next_round() > options_.dp.target_epsilon) {
    state_ = RunState::finished;
    done_at_ms_ = now;
    log_.warning("privacy budget: round " + std::to_string(completed_) + " would take epsilon to " +
                 std::to_string(dp_->epsilon_after_next_round()) + ", above dp.target_epsilon " +
                 std::to_string(options_.dp.target_epsilon) + "; stopping after " + std::to_string(completed_) +
                 " rounds (epsilon " + std::to_string(dp_->epsilon()) + ")");
    return;
  }
  std::vector<std::string> ids;
  ids.reserve(registered_.size());
  for (const auto& [id, n] : registered_) ids.push_back(id);
  std::vector<std::string> sampled;
  if (dp_) {
    sampled = poisson_sample(ids, dp_->sampling_rate(), options_.seed, completed_);
  } else {
    const int64_t count = clients_to_sample(static_cast<int64_t>(ids.size()), options_.clients_per_round,
                                            options_.fraction_per_round, options_.min_clients);
    sampled = options_.sampling == ClientSampling::passes ? pass_sample(ids, count, options_.seed, completed_)
                                                           : sample_clients(ids, count, options_.seed, completed_);
  }
  auto round = std::make_unique<OpenRound>();
  round->round = completed_;
  round->registered = static_cast<int64_t>(ids.size());
  round->sampled.insert(sampled.begin(), sampled.end());
  const ClientConfig config = strategy_->configure(static_cast<int>(completed_));
  round->config = RoundConfig{config.local_steps, config.proximal_mu, options_.client_lr_at(completed_),
                              dp_ ? options_.dp.clip_norm : 0.0};
  round->deadline_ms = now + options_.round_deadline_ms;
  if (options_.secure_aggregation.enabled) {
    const SecureAggregationOptions& secure = options_.secure_aggregation;
    secagg::RoundParams params;
    params.enabled = true;
    params.sampled = sampled;
    std::sort(params.sampled.begin(), params.sampled.end());
    params.threshold = secure.threshold_for(static_cast<int64_t>(sampled.size()));
    params.scale_bits = secure.scale_bits;
    params.clip_range = secure.clip_range;
    params.weight_cap = secure.weight_cap;
    params.uniform_weights = dp_ != nullptr;
    if (dp_ && options_.dp.distributed_noise) {
      params.noise_stddev = dp_->noise_multiplier() * options_.dp.clip_norm / std::sqrt(double(params.threshold));
    }
    params.metric_names = secure_metric_names();
    params.metric_scale_bits =
        metric_scale_bits_for(static_cast<int64_t>(sampled.size()), params.uniform_weights ? 1 : params.weight_cap);
    params.vector_length = secure_vector_length(global_.tensors, params.metric_names.size());
    round->secure = std::make_unique<secagg::AggregatorSession>(
        completed_, params, now, secagg::SessionTimes{secure.phase_timeout_ms, round->deadline_ms}, verifier_);
    if (static_cast<int64_t>(sampled.size()) < secure.min_sites) {
      round->secure->fail(std::to_string(sampled.size()) + " sites sampled, fewer than secure_aggregation.min_sites " +
                          std::to_string(secure.min_sites));
    }
  }
  round->summary.round = completed_;
  round->summary.sampled = sampled;
  round->summary.started_ms = now;
  round_ = std::move(round);
  state_ = RunState::in_round;
  log_.info("round " + std::to_string(completed_) + "/" + std::to_string(options_.rounds) + " started: " +
            std::to_string(sampled.size()) + " of " + std::to_string(ids.size()) + " clients sampled (" +
            joined(round_->sampled) + ")");
}

void AggregatorService::close_round(int64_t now) {
  std::optional<metrics::PhaseScope> aggregation(std::in_place, cost_, metrics::Phase::aggregation);
  OpenRound& open = *round_;
  std::vector<ClientUpdate> updates;   // in client id order (the map's), for a reproducible sum
  updates.reserve(open.updates.size());
  RoundSummary& summary = open.summary;
  MetricsMean metrics(summary);
  split::RoundSites closing;   // what the split servers close this round with
  for (auto& [id, update] : open.updates) {
    summary.reported.push_back(id);
    summary.num_samples += update.num_samples;
    closing.ids.push_back(id);
    closing.weights.push_back(static_cast<double>(update.num_samples));
    metrics.add(id, update.metrics, static_cast<double>(update.num_samples));
    updates.push_back(std::move(update));
  }
  metrics.finish();

  NamedTensors next;
  try {
    if (open.secure) {
      // The strategy sees one update: the mean decoded from the unmasked sum
      // (none when the protocol failed: the global adapters stay).
      updates = secure_updates(open);
      closing = secure_closing_sites(summary.reported, open.secure->params());
    } else if (dp_) {
      // Under DP the strategy sees one update: the noisy mean of the clipped deltas.
      updates = {dp_->noisy_mean(updates, global_.tensors, open.registered)};
    }
    if (updates.empty() && open.secure) {
      for (const auto& [name, tensor] : global_.tensors) next[name] = tensor.clone();
    } else {
      next = strategy_->aggregate(static_cast<int>(open.round), global_.tensors, updates);
    }
  } catch (const std::exception& e) {
    fail("round " + std::to_string(open.round) + " could not be aggregated: " + e.what());
    return;
  }
  for (auto& [name, tensor] : next) tensor = tensor.to(at::kFloat).contiguous();
  if (options_.strategy.lora_aggregation == lora::LoraAggregation::ffa) {
    // FFA-LoRA: A stays at its shared initialisation whatever a strategy or
    // DP noise did to it (sites that trained A were refused above).
    keep_frozen_a(global_.tensors, next);
  }
  summary.lora_truncation_error = strategy_->lora_truncation_error();
  global_.tensors = std::move(next);
  completed_ = open.round + 1;
  summary.closed_ms = now;
  if (dp_) {
    dp_->account_round();
    summary.dp_epsilon = dp_->epsilon();
  }
  if (dp_) closing.weights.clear();   // the DP mean weighs every site alike
  last_round_sites_ = std::move(closing);

  if (!options_.checkpoint_dir.empty()) {
    AggregatorCheckpoint checkpoint;
    checkpoint.completed_rounds = completed_;
    checkpoint.strategy = strategy_->name();
    checkpoint.seed = options_.seed;
    checkpoint.global = global_;
    checkpoint.strategy_state = strategy_->state();
    checkpoint.registered = registered_;
    checkpoint.site_lora = site_lora_;
    checkpoint.last_round_sites = last_round_sites_.ids;
    checkpoint.last_round_weights = last_round_sites_.weights;
    if (dp_) {
      checkpoint.dp_rdp = dp_->rdp();
      checkpoint.dp_rounds = dp_->rounds_accounted();
    }
    try {
      save_checkpoint(options_.checkpoint_dir, checkpoint, options_.keep_checkpoints);
      if (metrics_) metrics_->checkpoint_written();
    } catch (const std::exception& e) {
      fail("round " + std::to_string(open.round) + " aggregated but its checkpoint failed: " + e.what());
      return;
    }
  }
  close_split_rounds(open.round, &summary);
  if (state_ == RunState::failed) return;
  aggregation.reset();
  int64_t tokens = 0;   // the accepted sites' (none known under secure aggregation)
  for (const auto& [id, site_metrics] : summary.client_metrics) {
    auto trained = site_metrics.find("train_tokens");
    if (trained != site_metrics.end() && std::isfinite(trained->second)) tokens += static_cast<int64_t>(trained->second);
  }
  cost_.add_tokens(tokens);
  const metrics::RoleCost cost_now = cost_.totals();
  const metrics::RoleCost round_cost = cost_now - cost_at_round_start_;
  cost_at_round_start_ = cost_now;

  log_.info("round " + std::to_string(open.round) + " closed: " + std::to_string(summary.reported.size()) +
            " updates, " + std::to_string(summary.num_samples) + " samples, " +
            std::to_string(summary.rejected.size()) + " rejected" +
            (summary.failure.empty() ? std::string() : " (no update: " + summary.failure + ")") +
            (summary.dp_epsilon ? "; privacy: epsilon " + std::to_string(*summary.dp_epsilon) + " at delta " +
                                      std::to_string(options_.dp.delta)
                                : std::string()) +
            (summary.lora_truncation_error
                 ? "; lora product truncation error " + std::to_string(*summary.lora_truncation_error)
                 : std::string()) +
            "; cost " + metrics::describe_cost(round_cost));
  if (metrics_) metrics_->round_completed((summary.closed_ms - summary.started_ms) / 1000.0, summary.dp_epsilon);
  history_.push_back(summary);
  if (history_.size() > kHistoryRounds) history_.pop_front();
  std::unique_ptr<OpenRound> closed = std::move(round_);
  if (round_callback_) round_callback_(history_.back(), global_);
  if (completed_ >= options_.rounds) {
    state_ = RunState::finished;
    done_at_ms_ = now;
    log_.info("all " + std::to_string(options_.rounds) + " rounds completed");
    return;
  }
  state_ = RunState::waiting_for_clients;
  advance(now);
}

split::RoundSites AggregatorService::secure_closing_sites(const std::vector<std::string>& survivors,
                                                         const secagg::RoundParams& params) const {
  // The weight each survivor masked its update with (secure_encoding.cpp):
  // its samples, capped, as it registered them.
  split::RoundSites sites{survivors, {}};
  for (const std::string& id : survivors) {
    const auto known = registered_.find(id);
    const int64_t samples = known == registered_.end() ? 1 : known->second;
    sites.weights.push_back(
        static_cast<double>(params.uniform_weights ? 1 : std::clamp<int64_t>(samples, 1, params.weight_cap)));
  }
  return sites;
}

std::vector<ClientUpdate> AggregatorService::secure_updates(OpenRound& open) {
  const secagg::AggregatorSession& session = *open.secure;
  RoundSummary& summary = open.summary;
  summary.dropouts = session.dropouts();
  const std::string round = "round " + std::to_string(open.round);
  if (session.state() != secagg::SessionState::done) {
    summary.failure = session.failure();
    log_.error(summary.failure + "; the global adapters stay as they were and the next round goes on");
    return {};
  }
  DecodedSum decoded;
  try {
    decoded = decode_sum(session.sum(), global_.tensors, session.params());
  } catch (const std::invalid_argument& e) {
    summary.failure = "secure aggregation of " + round + " failed: " + e.what();
    log_.error(summary.failure + "; the global adapters stay as they were and the next round goes on");
    return {};
  }
  summary.reported = session.survivors();
  summary.num_samples = decoded.total_weight;
  // Only their mean: each site's metrics were masked with its update.
  summary.metrics = std::move(decoded.metrics);
  if (!summary.dropouts.empty()) {
    std::string gone;
    for (const auto& [id, phase] : summary.dropouts) gone += (gone.empty() ? "" : ", ") + id + " (" + phase + ")";
    log_.warning(round + ": unmasked the sum of " + std::to_string(summary.reported.size()) + " sites without " + gone);
  }
  if (dp_) return {dp_->noisy_mean_of_sum(std::move(decoded.weighted_sum), global_.tensors, open.registered)};
  ClientUpdate mean;
  mean.client_id = "secure-sum";
  mean.num_samples = decoded.total_weight;
  for (const auto& [name, sum] : decoded.weighted_sum) {
    mean.delta[name] = (sum / static_cast<double>(decoded.total_weight)).to(global_.tensors.at(name).scalar_type());
  }
  return {mean};
}

void AggregatorService::sync_split_servers() {
  for (const auto& closer : split_closers_) {
    try {
      const SplitRoundCloser::Synced synced = closer->sync(completed_, last_round_sites_);
      if (synced.previous_round == completed_) continue;
      if (completed_ > 0 && synced.previous_round + 1 == completed_) {
        log_.warning("split server " + closer->describe() + " had not closed round " + std::to_string(completed_ - 1) +
                     ": closed it now (" + std::to_string(synced.clients_averaged) + " clients averaged)");
      } else {
        log_.warning("split server " + closer->describe() + " was in round " + std::to_string(synced.previous_round) +
                     ", the federation is in round " + std::to_string(completed_) + ": it moved to round " +
                     std::to_string(completed_) + " (see its log)");
      }
    } catch (const net::RequestStopped&) {
      log_.info("stopped while bringing split server " + closer->describe() + " to round " +
                std::to_string(completed_) + "; the next start does it");
      return;
    } catch (const std::exception& e) {
      fail(e.what());
      return;
    }
  }
}

void AggregatorService::close_split_rounds(uint32_t round, RoundSummary* summary) {
  // The split servers average meanwhile: their cost, not the aggregator's.
  metrics::PhaseScope wait(cost_, metrics::Phase::wire);
  for (const auto& closer : split_closers_) {
    try {
      const uint32_t averaged = closer->close(round, last_round_sites_);
      if (summary) summary->split_clients_averaged.push_back(averaged);
      log_.info("split server " + closer->describe() + " closed round " + std::to_string(round) + " (" +
                std::to_string(averaged) + " clients averaged)");
    } catch (const net::RequestStopped&) {
      log_.info("stopped while closing round " + std::to_string(round) + " on split server " + closer->describe() +
                "; round " + std::to_string(round) + " is checkpointed here, and the next start closes it there");
      return;
    } catch (const std::exception& e) {
      fail(e.what());
      return;
    }
  }
}

void AggregatorService::fail(const std::string& reason) {
  log_.error("the run failed: " + reason);
  state_ = RunState::failed;
  failure_ = reason;
  round_.reset();
  done_at_ms_ = clock_->now_ms();
}

void AggregatorService::serve(net::ServerChannel& channel, const std::atomic<bool>& stop, int poll_ms,
                              int64_t finish_linger_ms) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& closer : split_closers_) closer->set_stop(&stop);   // SIGTERM ends their retries too
  }
  net::ServeLoop loop;
  loop.handle = [this](const net::PeerId& peer, const net::Bytes& request) { return handle(peer, request); };
  loop.log = log_;
  loop.poll_ms = poll_ms;
  metrics::PhaseScope role(cost_, metrics::Phase::wire);   // polling, TLS and frames
  loop.after_each = [this, finish_linger_ms] {
    tick();
    std::lock_guard<std::mutex> lock(mutex_);
    if (!done_at_ms_) return false;
    bool everyone_told = true;
    for (const auto& [id, n] : registered_) everyone_told = everyone_told && told_finished_.count(id);
    return everyone_told || clock_->now_ms() - *done_at_ms_ >= finish_linger_ms;
  };
  net::serve(channel, stop, loop);
}

RunState AggregatorService::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

bool AggregatorService::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_ == RunState::finished || state_ == RunState::failed;
}

std::string AggregatorService::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

uint32_t AggregatorService::completed_rounds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return completed_;
}

std::optional<uint32_t> AggregatorService::open_round() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!round_) return std::nullopt;
  return round_->round;
}

std::vector<std::string> AggregatorService::sampled_clients() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!round_) return {};
  return {round_->sampled.begin(), round_->sampled.end()};
}

std::vector<std::string> AggregatorService::registered_clients() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, n] : registered_) ids.push_back(id);
  return ids;
}

GlobalAdapters AggregatorService::global() const {
  std::lock_guard<std::mutex> lock(mutex_);
  GlobalAdapters copy = global_;
  for (auto& [name, tensor] : copy.tensors) tensor = tensor.clone();
  return copy;
}

std::vector<RoundSummary> AggregatorService::history() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {history_.begin(), history_.end()};
}

std::vector<Rejection> AggregatorService::late_rejections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {late_rejections_.begin(), late_rejections_.end()};
}

}  // namespace cleave::aggregator
