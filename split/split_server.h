// The split server: runs blocks [cut_layer, L) (vanilla) or [cut_layer,
// top_cut) (U-shaped) of the frozen base with its own LoRA adapters for many
// clients, each from its own cut, and trains those adapters with its own
// optimizer. SFL-V1 keeps one adapter copy per client and averages the copies
// at the end of each round; SFL-V2 trains one shared copy in arrival order.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "aggregator/strategy.h"
#include "lora/adapter_set.h"
#include "metrics/cost_meter.h"
#include "split/generation_sessions.h"
#include "split/next_hop.h"
#include "split/split_messages.h"
#include "transport/channel.h"
#include "util/log.h"
#include "wire/frame.h"

namespace cleave::metrics {
class Registry;
}

namespace cleave {
class LlamaModel;
class AdamW;
}

namespace cleave::split {

class SplitServerMetrics;

enum class ServerVariant { sfl_v1, sfl_v2 };
ServerVariant parse_server_variant(const std::string& name);   // "sfl_v1" | "sfl_v2"

struct SplitServerOptions {
  ServerVariant variant = ServerVariant::sfl_v1;
  lora::LoraOptions lora;             // the server-side adapters
  int64_t min_cut_layer = 1;          // server adapters cover blocks [min_cut_layer, L)
  uint64_t seed = 1;
  double weight_decay = 0.0;
  size_t max_message_bytes = 256u << 20;
  int64_t max_tokens_per_step = 1 << 20;   // B * T
  std::string checkpoint_path;        // GGUF LoRA of the server's adapters; "" = none
  // The served blocks keep only their inputs and are recomputed in backward
  // (split_server.recompute): less memory per step, and in u_shaped per
  // client waiting for its backward request, for about one more forward.
  bool recompute = false;
  // int4 codes of what the server sends rounded stochastically (unbiased)
  // instead of to nearest (split_server.stochastic_rounding).
  bool stochastic_rounding = false;
  // Drop every client's state (SFL-V1 copy, optimizer moments) when a round
  // closes, so memory grows with the clients of a round, not with all that
  // ever trained. Each client must then say hello again in its next round, as
  // the simulator's freshly instantiated sites do; a long-lived
  // split::SplitTrainStep does not, so deployments keep this off.
  bool release_clients_at_round_end = false;
  // Split inference: the generation sessions the server holds for sites.
  GenerationLimits generation;
  // SFL-V1: how the clients' copies are merged at a round's end
  // (split_server.strategy); must be the aggregator's, which EndRound and
  // SyncRound check. Its lora_aggregation is lora.aggregation's.
  aggregator::StrategyOptions strategy;
  // Multi-hop (split_server.next): this server runs blocks up to
  // next.cut_layer and the next split server the rest; its adapters cover
  // [min_cut_layer, next.cut_layer). connect_next_hop() gives the channel.
  NextHopOptions next;

  void validate() const;              // throws std::invalid_argument naming the field
};

class SplitServer {
 public:
  // Starts from `initial` adapters when given, else from the checkpoint when
  // it exists, else from fresh adapters (seeded). `clock` tells generation
  // sessions' idle time (null: the steady clock).
  SplitServer(std::shared_ptr<const LlamaModel> model, SplitServerOptions options,
              std::optional<lora::AdapterSet> initial = std::nullopt,
              Log log = Log::to_stderr("split-server"), std::shared_ptr<const Clock> clock = nullptr);
  ~SplitServer();

  // One request from `peer` to one reply frame. Bad input never throws: it
  // gets an error reply and a log line, and other clients' state is untouched.
  net::Bytes handle(const net::PeerId& peer, const net::Bytes& request);

  // Serves on `channel` until `stop` becomes true (checked every poll_ms).
  void serve(net::ServerChannel& channel, const std::atomic<bool>& stop, int poll_ms = 100);

  // Closes `round`: SFL-V1 averages the copies of the clients that trained in
  // it and are among `participants` (no ids: all that trained), weighted by
  // the participants' weights (none: equally), per tensor over the clients
  // whose blocks include it, and hands the average to every client; then
  // checkpoints. Returns the clients averaged. Throws std::invalid_argument
  // for weights that are not one positive number per id.
  uint32_t end_round(uint32_t round, const RoundSites& participants = {});
  // SyncRound (see split_messages.h): agrees with the aggregator on the round.
  // Unless it closes the round before (a missed EndRound), every client's
  // unfinished work is dropped: the aggregator runs the round from its start.
  SyncRoundReply sync_round(uint32_t round, const RoundSites& participants);

  // Multi-hop: the channel to the next split server (options.next), before
  // serve(); `stop` ends a request to it that is being retried.
  void connect_next_hop(std::unique_ptr<net::ClientChannel> channel, const std::atomic<bool>* stop = nullptr);
  // The block where this server's part ends for `hello`'s site: the next
  // hop's cut, else top_cut (u_shaped) or L (vanilla).
  int64_t end_layer(const Hello& hello) const;

  // Called on the serving thread after each round closes (and is checkpointed).
  void on_round_closed(std::function<void(uint32_t round)> callback) { round_callback_ = std::move(callback); }

  // Records the split server's series (split/split_metrics.h) into
  // `registry`, which must outlive this server. Before serve(), after
  // connect_next_hop() (the next hop's bytes are channel="next_hop").
  void export_metrics(metrics::Registry& registry);

  uint32_t round() const { return round_.load(); }   // any thread
  const lora::AdapterSet& global_adapters() const { return global_; }
  const GenerationSessions& generation() const { return *generation_; }
  // The adapters a client trains against (its copy in SFL-V1, the shared one in V2).
  const lora::AdapterSet& adapters_for(const std::string& client_id) const;
  wire::ByteCounter& bytes() { return bytes_; }
  // Multi-hop: the bytes to and from the next hop (null without one).
  wire::ByteCounter* next_hop_bytes() { return next_ ? &next_->bytes() : nullptr; }
  // Bytes of labels (target ids and weights) received in vanilla forward
  // requests: the clients' text. 0 while every client runs u_shaped.
  uint64_t label_bytes() const { return label_bytes_.load(); }
  // What serving cost this process so far, by phase (metrics/cost_meter.h),
  // with the tokens of every forward step; any thread. Each round's share is
  // in the "closed round" log line.
  metrics::RoleCost cost() const { return cost_.totals(); }

 private:
  struct ClientState;
  ClientState& client(const std::string& client_id);
  net::Bytes on_hello(const net::PeerId& peer, const net::Bytes& request);
  net::Bytes on_forward(const net::Bytes& request);
  net::Bytes on_backward(const net::Bytes& request);
  net::Bytes on_end_round(const net::Bytes& request);
  net::Bytes on_sync_round(const net::Bytes& request);
  void check_site(const Hello& hello) const;
  net::Bytes on_generate(MessageType type, const net::Bytes& request);
  NextHop& next_hop();   // throws unless options_.next is set and connected
  GenerateOpenReply open_generation(const GenerateOpen& request);
  void optimizer_step(ClientState& state, double lr, double grad_clip);
  void save_checkpoint() const;
  // At a resume: refuses a checkpoint merged with another strategy, and
  // loads the strategy's state the checkpoint names (a file beside it).
  void resume_strategy(const std::string& saved_signature, const std::string& state_file);
  // Refuses (std::invalid_argument) an aggregator whose strategy signature
  // (EndRound / SyncRound) is not this server's; empty is not checked.
  void check_strategy(const std::string& aggregator_strategy) const;
  // SFL-V1 with lora.aggregation separate or ffa: the strategy's new global
  // from the copies of `trained` (client id -> weight), each over the
  // tensors of its blocks.
  lora::NamedTensors merge_copies(uint32_t round, const lora::NamedTensors& global,
                                  const std::map<std::string, double>& trained);
  // Forgets every client's session and unaveraged copy (they say hello again).
  void discard_unfinished_round();

  std::shared_ptr<const LlamaModel> model_;
  SplitServerOptions options_;
  Log log_;
  std::function<void(uint32_t round)> round_callback_;
  std::string fingerprint_;
  lora::AdapterSet global_;                     // V1: last average; V2: the trained copy
  std::unique_ptr<AdamW> shared_optimizer_;     // V2
  std::unique_ptr<aggregator::Strategy> strategy_;   // V1: merges the copies
  std::string strategy_signature_;              // aggregator::strategy_signature(options_.strategy)
  std::map<std::string, std::unique_ptr<ClientState>> clients_;
  // Written by the serving thread; round() may be read from any thread.
  std::atomic<uint32_t> round_{0};
  wire::ByteCounter bytes_;
  std::atomic<uint64_t> label_bytes_{0};
  metrics::CostMeter cost_;
  metrics::RoleCost cost_at_round_start_;       // cost_ when the open round began (serving thread)
  std::unique_ptr<NextHop> next_;                // multi-hop: the next split server
  std::unique_ptr<GenerationSessions> generation_;
  std::unique_ptr<SplitServerMetrics> metrics_;   // null unless export_metrics; last: reads bytes_
};

}  // namespace cleave::split
