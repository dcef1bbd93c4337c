// The aggregator: the federated round loop, written once over the message
// channel interface (ZeroMQ in a deployment, in-process in a simulation);
// strategies plug in through aggregator::Strategy.
//
// A round r:
//  1. starts once enough sites registered (min_registered, then at once after
//     the previous round): sample_clients(registered, n, seed, r) picks the
//     sites; the deadline is now + round_deadline_ms;
//  2. a sampled site that polls gets the global adapters and its RoundConfig;
//     any other poll gets Wait (or Finished once the run is over). Under
//     lora.aggregation product a site may train at a lower lora.rank (or
//     another alpha), told at registration: it gets the global at its rank
//     (global_for_site), encoded once per round for each rank;
//  3. updates are checked and collected; late (closed round), duplicate,
//     unsampled, misshapen or non-finite updates are rejected with a reason
//     and logged, never blocking the round; a site whose update was invalid
//     is done for the round;
//  4. the round closes when every sampled site has reported (or sent an
//     invalid update) and at least min_clients updates were accepted, or at
//     the deadline if min_clients were accepted by then; otherwise the
//     deadline is extended (on_deadline: extend, up to max_extensions times)
//     or the run fails (Finished{failed} to every site);
//  5. closing: the strategy aggregates the accepted updates (in client id
//     order, so the result does not depend on arrival order), the new global
//     adapters and the round state are checkpointed, and every split server
//     is told to end the round (SFL-V1 averaging in step).
//
// Time comes from a Clock, checked on every request and on tick(), so tests
// move a ManualClock instead of sleeping. All public methods are thread-safe
// (one mutex); the round callback runs under it and must not call back in.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "aggregator/aggregator_options.h"
#include "aggregator/federation_messages.h"
#include "aggregator/global_adapters.h"
#include "aggregator/split_round_closer.h"
#include "aggregator/strategy.h"
#include "metrics/cost_meter.h"
#include "transport/channel.h"
#include "util/clock.h"
#include "util/log.h"
#include "wire/frame.h"

namespace cleave::secagg {
class KeyVerifier;
struct RoundParams;
}

namespace cleave::metrics {
class Registry;
}

namespace cleave::aggregator {

struct AggregatorCheckpoint;
class AggregatorMetrics;
class RemovedSitesFile;
enum class RejectReason;

struct Rejection {
  std::string client_id;
  uint32_t round = 0;        // the round the update claimed
  std::string reason;
};

// What happened in one closed round (for logs, metrics files and plots).
class DpFedAvg;

struct RoundSummary {
  uint32_t round = 0;
  std::vector<std::string> sampled;              // sorted
  std::vector<std::string> reported;             // accepted updates, sorted
  std::vector<Rejection> rejected;               // rejections received while the round was open
  int64_t num_samples = 0;                       // sum over accepted updates
  std::map<std::string, double> metrics;         // sample-weighted mean over accepted updates
  std::map<std::string, std::map<std::string, double>> client_metrics;
  int64_t extensions = 0;
  int64_t started_ms = 0, closed_ms = 0;         // Clock time
  std::vector<uint32_t> split_clients_averaged;  // per split server
  std::optional<double> dp_epsilon;              // under aggregator.dp: epsilon at dp.delta after this round
  std::optional<double> lora_truncation_error;   // under lora.aggregation product (lora::product_mean)
  // Under secure aggregation: why the round closed without an update ("" when
  // it aggregated), and the phase each sampled site dropped out in.
  std::string failure;
  std::map<std::string, std::string> dropouts;
};

enum class RunState { waiting_for_clients, in_round, finished, failed };
const char* run_state_name(RunState state);

class AggregatorService {
 public:
  using RoundCallback = std::function<void(const RoundSummary&, const GlobalAdapters&)>;

  // Starts from `initial` unless options.checkpoint_dir holds a checkpoint: then
  // it resumes after the checkpoint's last completed round (the checkpoint
  // must be for the same strategy, seed, base and adapter names; else throws
  // std::runtime_error saying which). A channel to each of
  // options.split_servers is opened with `split_channels` (default:
  // zmq_connect).
  AggregatorService(AggregatorOptions options, GlobalAdapters initial, Log log = Log::to_stderr("aggregator"),
                    std::shared_ptr<const Clock> clock = nullptr, ChannelFactory split_channels = {});
  ~AggregatorService();

  // Another split server to keep in step (e.g. one called in-process).
  void add_split_round_closer(std::unique_ptr<SplitRoundCloser> closer);
  // Under secure aggregation: check the sites' signatures here too (against
  // the federation CA), so a site whose keys or consistency signature do not
  // verify is left out of the round before honest sites see it. Without one
  // only the sites check.
  void verify_site_signatures(std::shared_ptr<const secagg::KeyVerifier> verifier);
  void on_round_closed(RoundCallback callback);

  // Takes `client_id` out of the federation at once: off the registered
  // sites, so no later round samples it, and out of the open round's
  // sampled sites (an update it sent this round is dropped; under secure
  // aggregation it counts as withdrawn), so the round closes as soon as the
  // others have reported (min_clients still applies). Until allow_site(), its
  // registrations, polls and updates are refused with "site <id> may not
  // take part in this federation: <why>". The deployed aggregator calls it when the
  // CRL revokes a site's certificate and for the sites the operator lists in
  // checkpoint_dir/removed_sites.
  void remove_site(const std::string& client_id, const std::string& why);
  // Lets a removed site register again.
  void allow_site(const std::string& client_id);
  // Keeps the sites listed in `path` (aggregator/removed_sites.h) removed:
  // reads it now (throwing std::runtime_error when it exists but cannot be
  // read) and again on every tick() when it changed; a site whose line is
  // deleted may register again (unless it was removed for another reason).
  void watch_removed_sites(const std::string& path);
  std::vector<std::string> removed_sites() const;
  // Records the aggregator's series (aggregator/aggregator_metrics.h) into
  // `registry`, which must outlive this service.
  void export_metrics(metrics::Registry& registry);

  // One request from `peer` to one reply frame. Bad input never throws: it
  // gets an error reply or a rejecting ack, and a log line.
  net::Bytes handle(const net::PeerId& peer, const net::Bytes& request);
  // Starts a round or applies a deadline if the clock says so.
  void tick();
  // Answers on `channel` until `stop`, or until the run is over and every
  // registered site was told so (or finish_linger_ms passed on the clock).
  void serve(net::ServerChannel& channel, const std::atomic<bool>& stop, int poll_ms = 100,
             int64_t finish_linger_ms = 10000);

  RunState state() const;
  bool done() const;                         // finished or failed
  std::string failure() const;               // why the run failed; "" otherwise
  uint32_t completed_rounds() const;
  std::optional<uint32_t> open_round() const;
  std::vector<std::string> sampled_clients() const;   // of the open round
  std::vector<std::string> registered_clients() const;
  GlobalAdapters global() const;             // a copy
  // The last kHistoryRounds rounds closed by this instance (a long-lived
  // service must not grow with every round; on_round_closed sees them all).
  // (A summary holds every sampled site's id and metrics: 100 rounds of 20
  // sites are about 1.5 MB.)
  static constexpr size_t kHistoryRounds = 100;
  std::vector<RoundSummary> history() const;
  std::vector<Rejection> late_rejections() const;     // updates for rounds already closed
  wire::ByteCounter& bytes() { return bytes_; }
  // What running the federation cost this process so far, by phase
  // (metrics/cost_meter.h), with the training tokens of the accepted
  // updates (their train_tokens; unknown under secure aggregation, which
  // shows only their mean). Each round's share is in the "closed" log line.
  metrics::RoleCost cost() const { return cost_.totals(); }

 private:
  struct OpenRound;
  struct SiteStart;

  void remove_site_locked(const std::string& client_id, const std::string& why, int64_t now);
  // Applies a change of the removed_sites file and logs its problems; a file
  // it cannot read throws at the start, later it is logged and skipped.
  void read_removed_sites_file(int64_t now, bool at_start);
  // Throws std::invalid_argument with the refusal when `client_id` was removed.
  void refuse_if_removed(const std::string& client_id) const;
  net::Bytes on_register(const net::Bytes& request);
  net::Bytes on_round_request(const net::Bytes& request, int64_t now);
  net::Bytes on_update(const net::Bytes& request, int64_t now);
  net::Bytes on_secure(FederationMessage type, const net::Bytes& request, int64_t now);
  void advance(int64_t now);                 // start rounds, apply deadlines
  void start_round(int64_t now);
  void close_round(int64_t now);
  // Under secure aggregation: the unmasked sum as the round's one update.
  std::vector<ClientUpdate> secure_updates(OpenRound& open);
  // The survivors of a secure round with the weights their masked updates
  // carried, for the split servers.
  split::RoundSites secure_closing_sites(const std::vector<std::string>& survivors,
                                         const secagg::RoundParams& params) const;
  void fail(const std::string& reason);
  void publish_metrics();                    // the state's gauges, after each request and tick
  void close_split_rounds(uint32_t round, RoundSummary* summary);
  // Before the first round this instance runs: brings every split server to
  // round completed_ (closing completed_ - 1 there if it missed its end).
  void sync_split_servers();
  void resume_from(const AggregatorCheckpoint& checkpoint);
  net::Bytes reply_frame(net::Bytes frame);   // counts the bytes sent
  // The lora rank and alpha of a registering site, checked against the
  // global adapters'; nullopt when they are the global's. Throws naming the site.
  std::optional<SiteLora> registered_lora(const Register& hello) const;
  // The rank and LoRA scale over the global's that `client_id` trains at
  // (ClientUpdate::lora_rank, lora_scale): 0 and 1 at the global's.
  std::pair<int64_t, double> site_rank_and_scale(const std::string& client_id) const;
  // The open round's global adapters as `client_id` starts from them, computed
  // and encoded once per round for each rank and alpha.
  const SiteStart& site_start(const std::string& client_id);

  AggregatorOptions options_;
  Log log_;
  std::shared_ptr<const Clock> clock_;
  std::unique_ptr<Strategy> strategy_;
  std::vector<std::unique_ptr<SplitRoundCloser>> split_closers_;
  std::unique_ptr<DpFedAvg> dp_;              // under aggregator.dp
  std::shared_ptr<const secagg::KeyVerifier> verifier_;   // under secure aggregation, may be null
  RoundCallback round_callback_;

  mutable std::mutex mutex_;
  GlobalAdapters global_;
  std::map<std::string, int64_t> registered_;   // client id -> num_samples
  std::map<std::string, SiteLora> site_lora_;   // registered sites at another lora rank or alpha
  uint32_t completed_ = 0;
  RunState state_ = RunState::waiting_for_clients;
  std::string failure_;
  std::unique_ptr<OpenRound> round_;
  bool resync_split_ = true;                    // the split servers are not yet known to be in our round
  split::RoundSites last_round_sites_;   // accepted updates of round completed_ - 1, with their weights
  std::set<std::string> told_finished_;
  std::map<std::string, std::string> removed_;    // client id -> why (remove_site)
  std::unique_ptr<RemovedSitesFile> removed_file_;   // watch_removed_sites
  std::set<std::string> removed_by_file_;         // the sites it lists now
  std::optional<int64_t> done_at_ms_;
  std::deque<RoundSummary> history_;          // at most kHistoryRounds
  std::deque<Rejection> late_rejections_;     // at most kHistoryRounds
  wire::ByteCounter bytes_;
  metrics::CostMeter cost_;
  metrics::RoleCost cost_at_round_start_;     // cost_ when the last round closed
  std::unique_ptr<AggregatorMetrics> metrics_;   // null unless export_metrics; last: reads bytes_
};

}  // namespace cleave::aggregator
