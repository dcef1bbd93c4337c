#include "split/split_server.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "client/adamw.h"
#include "aggregator/strategy_state_file.h"
#include "lora/adapter_gguf.h"
#include "lora/product_mean.h"
#include "model/gguf.h"
#include "model/llama_model.h"
#include "model/loss.h"
#include "split/split_metrics.h"
#include "split/tensor_wire.h"
#include "transport/serve_loop.h"

namespace cleave::split {
namespace fs = std::filesystem;

ServerVariant parse_server_variant(const std::string& name) {
  if (name == "sfl_v1") return ServerVariant::sfl_v1;
  if (name == "sfl_v2") return ServerVariant::sfl_v2;
  throw std::invalid_argument("unknown split server variant '" + name +
                              "': expected sfl_v1 (per-client copies averaged each round) or "
                              "sfl_v2 (one shared copy)");
}

void SplitServerOptions::validate() const {
  lora.validate();
  if (min_cut_layer < 1) throw std::invalid_argument("split_server.min_cut_layer must be >= 1");
  if (max_message_bytes < 1024) throw std::invalid_argument("split_server.max_message_bytes is too small");
  if (max_tokens_per_step < 1) throw std::invalid_argument("split_server.max_tokens_per_step must be >= 1");
  if (weight_decay < 0) throw std::invalid_argument("split_server.weight_decay must be >= 0");
  generation.validate();
  if (next.enabled() && next.cut_layer <= min_cut_layer) {
    throw std::invalid_argument("split_server.next.cut_layer (" + std::to_string(next.cut_layer) +
                                ") must be above split_server.min_cut_layer (" + std::to_string(min_cut_layer) +
                                "): the next hop takes over after this server's blocks");
  }
  aggregator::StrategyOptions merge = strategy;
  merge.lora_aggregation = lora.aggregation;
  try {
    merge.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("split_server.") + e.what());
  }
}

struct SplitServer::ClientState {
  Hello hello;
  lora::AdapterSet adapters;            // SFL-V1: this client's copy
  std::unique_ptr<AdamW> optimizer;     // SFL-V1
  bool trained_this_round = false;
  // The last reply, for answering a repeated request without applying it twice.
  MessageType last_type = MessageType::error;
  StepKey last_key;
  net::Bytes last_reply;
  // U-shaped: the graph between the forward reply and the backward request.
  StepKey pending_key;
  at::Tensor pending_input;             // smashed, requires grad [B, T, dim]
  at::Tensor pending_output;            // activations at top_cut [B, T, dim]
  double pending_lr = 0, pending_clip = 0;
};

namespace {

net::Bytes error_frame(const StepKey& key, const std::string& message, ErrorCode code = ErrorCode::refused) {
  return wire::pack(static_cast<uint16_t>(MessageType::error),
                    ErrorReply{key, message, static_cast<uint8_t>(code)});
}

// A step from a client the server holds no session for.
class UnknownClient : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The site's blocks on this server: [cut_layer, end).
bool covers(const Hello& hello, int64_t end, int64_t layer) { return layer >= hello.cut_layer && layer < end; }

// Participant id -> weight (1 each when no weights came); empty for no ids.
std::map<std::string, double> participant_weights(const RoundSites& sites) {
  if (!sites.weights.empty() && sites.weights.size() != sites.ids.size()) {
    throw std::invalid_argument("the round's participants carry " + std::to_string(sites.weights.size()) +
                                " weights for " + std::to_string(sites.ids.size()) + " sites: expected one per site");
  }
  std::map<std::string, double> weights;
  for (size_t i = 0; i < sites.ids.size(); ++i) {
    const double weight = sites.weights.empty() ? 1.0 : sites.weights[i];
    if (!(weight > 0) || !std::isfinite(weight)) {
      throw std::invalid_argument("participant " + sites.ids[i] + " has weight " + std::to_string(weight) +
                                  ": a weight must be positive and finite");
    }
    weights[sites.ids[i]] = weight;
  }
  return weights;
}

BlockActivations block_activations(const SplitServerOptions& options) {
  return options.recompute ? BlockActivations::recomputed : BlockActivations::saved;
}

}  // namespace

SplitServer::SplitServer(std::shared_ptr<const LlamaModel> model, SplitServerOptions options,
                         std::optional<lora::AdapterSet> initial, Log log, std::shared_ptr<const Clock> clock)
    : model_(std::move(model)), options_(std::move(options)), log_(std::move(log)) {
  options_.validate();
  options_.strategy.lora_aggregation = options_.lora.aggregation;
  strategy_ = aggregator::make_strategy(options_.strategy);
  strategy_signature_ = aggregator::strategy_signature(options_.strategy);
  fingerprint_ = model_->base_fingerprint();
  if (options_.min_cut_layer >= model_->n_layers()) {
    throw std::invalid_argument("split_server.min_cut_layer (" + std::to_string(options_.min_cut_layer) +
                                ") must be below the model's " + std::to_string(model_->n_layers()) +
                                " blocks");
  }
  options_.next.validate(options_.min_cut_layer, model_->n_layers());
  const int64_t adapted_end = options_.next.enabled() ? options_.next.cut_layer : model_->n_layers();
  if (initial) {
    global_ = initial->clone();
  } else if (!options_.checkpoint_path.empty() && std::filesystem::exists(options_.checkpoint_path)) {
    global_ = lora::load_gguf(options_.checkpoint_path, *model_);
    lora::LoraOptions loaded = global_.options();   // rank and alpha from the file
    loaded.aggregation = options_.lora.aggregation;
    global_.set_options(loaded);
    // the round the checkpoint closed is stored beside the tensors
    auto file = gguf::File::open(options_.checkpoint_path);
    round_ = static_cast<uint32_t>(std::stoul(file->get_string("cleave.round", "0")));
    resume_strategy(file->get_string("cleave.strategy", ""), file->get_string("cleave.strategy_state", ""));
    log_.info("resumed from " + options_.checkpoint_path + " at round " + std::to_string(round_));
  } else {
    const int64_t min_cut = options_.min_cut_layer;
    global_ = lora::AdapterSet::create(*model_, options_.lora, options_.seed, [&](int64_t layer) {
      return layer >= min_cut && layer < adapted_end;
    });
  }
  global_.to(model_->device());  // adapters and optimizer state live where the model computes
  if (options_.variant == ServerVariant::sfl_v2) {
    shared_optimizer_ = std::make_unique<AdamW>(global_.parameters(),
                                                AdamWOptions{0.9, 0.999, 1e-8, options_.weight_decay});
  }
  generation_ = std::make_unique<GenerationSessions>(model_, options_.generation, std::move(clock), log_);
}

SplitServer::~SplitServer() = default;

void SplitServer::connect_next_hop(std::unique_ptr<net::ClientChannel> channel, const std::atomic<bool>* stop) {
  if (!options_.next.enabled()) {
    throw std::invalid_argument("connect_next_hop: this split server has no split_server.next");
  }
  next_ = std::make_unique<NextHop>(std::move(channel), options_.next, options_.max_message_bytes, stop);
  generation_->set_next_hop(next_.get());
}

NextHop& SplitServer::next_hop() {
  if (!next_) throw std::logic_error("split_server.next is set but no channel to the next hop was connected");
  return *next_;
}

int64_t SplitServer::end_layer(const Hello& hello) const {
  if (options_.next.enabled()) return options_.next.cut_layer;
  return hello.mode == static_cast<uint8_t>(SplitMode::u_shaped) ? hello.top_cut : model_->n_layers();
}

SplitServer::ClientState& SplitServer::client(const std::string& client_id) {
  auto it = clients_.find(client_id);
  if (it == clients_.end()) {
    throw UnknownClient("client '" + client_id + "' has not said hello (send Hello first)");
  }
  return *it->second;
}

const lora::AdapterSet& SplitServer::adapters_for(const std::string& client_id) const {
  if (options_.variant == ServerVariant::sfl_v2) return global_;
  auto it = clients_.find(client_id);
  if (it == clients_.end()) throw std::invalid_argument("unknown client '" + client_id + "'");
  return it->second->adapters;
}

void SplitServer::export_metrics(metrics::Registry& registry) {
  metrics_ = std::make_unique<SplitServerMetrics>(registry, bytes_, next_ ? &next_->bytes() : nullptr);
  metrics_->publish(round_.load(), clients_.size(), generation_->count(), generation_->kv_bytes());
}

net::Bytes SplitServer::handle(const net::PeerId& peer, const net::Bytes& request) {
  metrics::PhaseScope role(cost_, metrics::Phase::wire);   // its compute phases nest inside
  StepKey key;
  try {
    const wire::FrameHeader header = wire::peek(request);
    const auto type = static_cast<MessageType>(header.type);
    bytes_.add(message_name(type), wire::Direction::received, request.size());
    net::Bytes reply;
    switch (type) {
      case MessageType::hello: reply = on_hello(peer, request); break;
      case MessageType::forward:
      case MessageType::backward: {
        const auto started = std::chrono::steady_clock::now();
        const bool forward = type == MessageType::forward;
        reply = forward ? on_forward(request) : on_backward(request);
        if (metrics_) {
          metrics_->step(forward ? "forward" : "backward",
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        }
        break;
      }
      case MessageType::end_round: reply = on_end_round(request); break;
      case MessageType::sync_round: reply = on_sync_round(request); break;
      case MessageType::generate_open:
      case MessageType::generate_prefill:
      case MessageType::generate_step:
      case MessageType::generate_close: reply = on_generate(type, request); break;
      default:
        throw wire::WireError(std::string("unexpected message type ") + message_name(type) +
                              " at the split server");
    }
    bytes_.add(message_name(static_cast<MessageType>(wire::peek(reply).type)), wire::Direction::sent,
               reply.size());
    if (metrics_) metrics_->publish(round_.load(), clients_.size(), generation_->count(), generation_->kv_bytes());
    return reply;
  } catch (const std::exception& e) {
    log_.warning("rejected a request from peer " + std::to_string(std::hash<std::string>{}(peer) % 100000) +
                 ": " + e.what());
    // A next hop that lost the site's session: the site says hello again, which the chain relays.
    const bool unknown = dynamic_cast<const UnknownClient*>(&e) != nullptr ||
                         dynamic_cast<const SplitSessionLost*>(&e) != nullptr;
    const ErrorCode code = unknown ? ErrorCode::unknown_client
                           : dynamic_cast<const UnknownSession*>(&e) ? ErrorCode::unknown_session
                                                                     : ErrorCode::refused;
    net::Bytes reply = error_frame(key, e.what(), code);
    bytes_.add("error", wire::Direction::sent, reply.size());
    return reply;
  }
}

// What a site says of itself in Hello and GenerateOpen: its id, base model,
// split mode, cuts and codecs, against what this server runs.
void SplitServer::check_site(const Hello& hello) const {
  if (hello.client_id.empty() || hello.client_id.size() > 128) {
    throw std::invalid_argument("client id must be 1..128 characters");
  }
  if (hello.base_fingerprint != fingerprint_) {
    throw std::invalid_argument("client " + hello.client_id + " runs base model (" +
                                hello.base_fingerprint + ") but this server runs (" + fingerprint_ +
                                "): both sides must load the same GGUF");
  }
  const int64_t L = model_->n_layers();
  if (hello.mode > 1) throw std::invalid_argument("unknown split mode " + std::to_string(hello.mode));
  if (hello.cut_layer < options_.min_cut_layer || hello.cut_layer >= L) {
    throw std::invalid_argument("cut_layer " + std::to_string(hello.cut_layer) + " is outside [" +
                                std::to_string(options_.min_cut_layer) + ", " + std::to_string(L - 1) +
                                "] served here");
  }
  if (hello.mode == static_cast<uint8_t>(SplitMode::u_shaped) &&
      (hello.top_cut <= hello.cut_layer || hello.top_cut > L)) {
    throw std::invalid_argument("u_shaped top_cut " + std::to_string(hello.top_cut) +
                                " must be in (cut_layer, " + std::to_string(L) + "]");
  }
  if (options_.next.enabled()) {
    const int64_t next_cut = options_.next.cut_layer;
    if (hello.cut_layer >= next_cut) {
      throw std::invalid_argument("cut_layer " + std::to_string(hello.cut_layer) + " is not below " +
                                  std::to_string(next_cut) + ", where the next split server of this chain takes over");
    }
    if (hello.mode == static_cast<uint8_t>(SplitMode::u_shaped) && hello.top_cut <= next_cut) {
      throw std::invalid_argument("u_shaped top_cut " + std::to_string(hello.top_cut) + " must be above " +
                                  std::to_string(next_cut) + ", where the next split server of this chain takes over");
    }
  }
  for (uint8_t codec : {hello.activation_codec, hello.gradient_codec}) {
    if (codec > static_cast<uint8_t>(wire::WireDType::I4_GROUP)) {
      throw std::invalid_argument("unknown codec id " + std::to_string(codec));
    }
  }
}

net::Bytes SplitServer::on_hello(const net::PeerId&, const net::Bytes& request) {
  const Hello hello = wire::unpack<Hello>(request, static_cast<uint16_t>(MessageType::hello),
                                          options_.max_message_bytes);
  check_site(hello);
  if (options_.next.enabled()) next_hop().hello(hello);   // the chain's later hops learn of the site too
  auto& slot = clients_[hello.client_id];
  if (!slot) {
    slot = std::make_unique<ClientState>();
    if (options_.variant == ServerVariant::sfl_v1) {
      slot->adapters = global_.clone();
      slot->optimizer = std::make_unique<AdamW>(slot->adapters.parameters(),
                                                AdamWOptions{0.9, 0.999, 1e-8, options_.weight_decay});
    }
    log_.info("client " + hello.client_id + " joined: cut " + std::to_string(hello.cut_layer) +
              (hello.mode ? ", u_shaped top " + std::to_string(hello.top_cut) : ", vanilla"));
  }
  slot->hello = hello;
  slot->pending_input = at::Tensor();
  slot->pending_output = at::Tensor();
  return wire::pack(static_cast<uint16_t>(MessageType::hello_reply), HelloReply{round_, fingerprint_});
}

void SplitServer::optimizer_step(ClientState& state, double lr, double grad_clip) {
  metrics::PhaseScope phase(metrics::Phase::optimizer);
  lora::AdapterSet& adapters =
      options_.variant == ServerVariant::sfl_v1 ? state.adapters : global_;
  AdamW& optimizer = options_.variant == ServerVariant::sfl_v1 ? *state.optimizer : *shared_optimizer_;
  clip_grad_norm(adapters.parameters(), grad_clip);
  optimizer.step(lr);
  state.trained_this_round = true;
}

net::Bytes SplitServer::on_forward(const net::Bytes& request) {
  ForwardRequest req = wire::unpack<ForwardRequest>(request, static_cast<uint16_t>(MessageType::forward),
                                                    options_.max_message_bytes);
  label_bytes_ += req.targets.size() * sizeof(int32_t) + req.weights.size() * sizeof(float);
  ClientState& state = client(req.key.client_id);
  if (state.last_type == MessageType::forward && state.last_key == req.key) return state.last_reply;
  if (req.key.round != round_) {
    return error_frame(req.key, "step for round " + std::to_string(req.key.round) +
                                    " but the server is in round " + std::to_string(round_));
  }
  if (!(std::isfinite(req.lr) && req.lr >= 0 && req.lr < 10) || !(std::isfinite(req.grad_clip) && req.grad_clip >= 0)) {
    throw std::invalid_argument("lr and grad_clip must be finite and >= 0");
  }
  const int64_t dim = model_->config().dim;
  at::Tensor smashed = from_wire(req.smashed, {-1, -1, dim}, "smashed activations");  // [B, T, dim]
  const int64_t B = smashed.size(0), T = smashed.size(1);
  if (B < 1 || T < 1 || B * T > options_.max_tokens_per_step) {
    throw std::invalid_argument("batch of " + std::to_string(B) + " x " + std::to_string(T) +
                                " tokens is empty or above max_tokens_per_step " +
                                std::to_string(options_.max_tokens_per_step));
  }
  if (T > model_->config().context_length) {
    throw std::invalid_argument("sequence length " + std::to_string(T) + " exceeds the context length " +
                                std::to_string(model_->config().context_length));
  }
  const Hello& hello = state.hello;
  lora::AdapterSet& adapters = options_.variant == ServerVariant::sfl_v1 ? state.adapters : global_;
  adapters.set_training(true);
  smashed.requires_grad_(true);
  const auto reply_codec = static_cast<wire::WireDType>(hello.gradient_codec);
  cost_.add_tokens(B * T);

  metrics::PhaseScope phase(metrics::Phase::forward);
  ForwardReply reply;
  reply.key = req.key;
  if (hello.mode == static_cast<uint8_t>(SplitMode::vanilla)) {
    if (static_cast<int64_t>(req.targets.size()) != B * T || static_cast<int64_t>(req.weights.size()) != B * T) {
      throw std::invalid_argument("vanilla step needs " + std::to_string(B * T) +
                                  " targets and weights, got " + std::to_string(req.targets.size()) +
                                  " and " + std::to_string(req.weights.size()));
    }
    const int64_t vocab = model_->config().vocab_size;
    for (int32_t t : req.targets) {
      if (t < 0 || t >= vocab) throw std::invalid_argument("target id " + std::to_string(t) + " outside the vocabulary");
    }
    for (float w : req.weights) {
      if (!(std::isfinite(w) && w >= 0)) throw std::invalid_argument("target weights must be finite and >= 0");
    }
    at::Tensor targets = at::tensor(req.targets, at::kInt).view({B, T}).to(at::kLong);
    at::Tensor weights = at::tensor(req.weights, at::kFloat).view({B, T});
    for (at::Tensor& p : adapters.parameters()) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
    at::Tensor h = model_->run_blocks(smashed, hello.cut_layer, end_layer(hello), &adapters, /*pos0=*/0,
                                      block_activations(options_));
    if (options_.next.enabled()) {
      // The next hop runs the rest, the head and the loss; its gradient at
      // its cut flows back through this server's blocks.
      const NextHop::Forwarded rest = next_hop().forward(req, h, hello);   // gradient at the next cut [B, T, dim]
      phase.switch_to(metrics::Phase::backward);
      h.backward(rest.tensor.to(h.options()));
      reply.loss = rest.loss;
      reply.n_scored = rest.n_scored;
    } else {
      LossResult loss = model_->head_loss(h, targets, weights, &adapters);  // no [B, T, vocab] logits
      phase.switch_to(metrics::Phase::backward);
      loss.loss.backward();
      reply.loss = loss.loss.item<double>();
      reply.n_scored = loss.n_scored;
    }
    reply.tensor = to_wire(smashed.grad(), reply_codec,
                           step_rounding(options_.stochastic_rounding, req.key.client_id, req.key.round,
                                         req.key.step, TensorStream::gradients_down));
    optimizer_step(state, req.lr, req.grad_clip);
  } else {
    if (!req.targets.empty() || !req.weights.empty()) {
      throw std::invalid_argument("u_shaped steps must not carry labels");
    }
    for (at::Tensor& p : adapters.parameters()) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
    at::Tensor out = model_->run_blocks(smashed, hello.cut_layer, end_layer(hello), &adapters, /*pos0=*/0,
                                        block_activations(options_));
    // Multi-hop: the site gets the last hop's activations at top_cut.
    const at::Tensor top = options_.next.enabled() ? next_hop().forward(req, out, hello).tensor : out;   // [B, T, dim]
    reply.tensor = to_wire(top, static_cast<wire::WireDType>(hello.activation_codec),
                           step_rounding(options_.stochastic_rounding, req.key.client_id, req.key.round,
                                         req.key.step, TensorStream::activations_down));
    state.pending_key = req.key;
    state.pending_input = smashed;
    state.pending_output = out;
    state.pending_lr = req.lr;
    state.pending_clip = req.grad_clip;
  }
  net::Bytes frame = wire::pack(static_cast<uint16_t>(MessageType::forward_reply), reply);
  state.last_type = MessageType::forward;
  state.last_key = req.key;
  state.last_reply = frame;
  return frame;
}

net::Bytes SplitServer::on_backward(const net::Bytes& request) {
  BackwardRequest req = wire::unpack<BackwardRequest>(
      request, static_cast<uint16_t>(MessageType::backward), options_.max_message_bytes);
  ClientState& state = client(req.key.client_id);
  if (state.last_type == MessageType::backward && state.last_key == req.key) return state.last_reply;
  if (!state.pending_output.defined() || !(state.pending_key == req.key)) {
    return error_frame(req.key, "no forward pass pending for this step: send the forward request first");
  }
  at::Tensor grad = from_wire(req.grad, state.pending_output.sizes().vec(), "activation gradient");
  metrics::PhaseScope phase(metrics::Phase::backward);
  // Multi-hop: the site's gradient at top_cut goes to the last hop; the
  // gradient at the next hop's cut comes back for this server's blocks.
  if (options_.next.enabled()) grad = next_hop().backward(req.key, grad, state.pending_output.sizes().vec());
  state.pending_output.backward(grad.to(state.pending_output.options()));
  BackwardReply reply;
  reply.key = req.key;
  reply.grad = to_wire(state.pending_input.grad(), static_cast<wire::WireDType>(state.hello.gradient_codec),
                       step_rounding(options_.stochastic_rounding, req.key.client_id, req.key.round, req.key.step,
                                     TensorStream::gradients_down));
  optimizer_step(state, state.pending_lr, state.pending_clip);
  state.pending_input = at::Tensor();
  state.pending_output = at::Tensor();
  net::Bytes frame = wire::pack(static_cast<uint16_t>(MessageType::backward_reply), reply);
  state.last_type = MessageType::backward;
  state.last_key = req.key;
  state.last_reply = frame;
  return frame;
}

net::Bytes SplitServer::on_end_round(const net::Bytes& request) {
  const EndRound req = wire::unpack<EndRound>(request, static_cast<uint16_t>(MessageType::end_round),
                                              options_.max_message_bytes);
  check_strategy(req.strategy);
  // The chain closes from its last hop back: a hop closes only after the
  // ones behind it have (a retried close is a no-op where it already was).
  if (options_.next.enabled()) next_hop().end_round(req);
  if (req.round + 1 == round_) {  // a repeated close of the round just closed
    return wire::pack(static_cast<uint16_t>(MessageType::end_round_reply), EndRoundReply{req.round, 0});
  }
  if (req.round != round_) {
    throw std::invalid_argument("cannot close round " + std::to_string(req.round) +
                                ": the server is in round " + std::to_string(round_));
  }
  const uint32_t averaged = end_round(req.round, req.participants);
  return wire::pack(static_cast<uint16_t>(MessageType::end_round_reply), EndRoundReply{req.round, averaged});
}

net::Bytes SplitServer::on_sync_round(const net::Bytes& request) {
  const SyncRound req = wire::unpack<SyncRound>(request, static_cast<uint16_t>(MessageType::sync_round),
                                                options_.max_message_bytes);
  check_strategy(req.strategy);
  if (options_.next.enabled()) next_hop().sync_round(req);
  return wire::pack(static_cast<uint16_t>(MessageType::sync_round_reply), sync_round(req.round, req.participants));
}

SyncRoundReply SplitServer::sync_round(uint32_t round, const RoundSites& participants) {
  SyncRoundReply reply;
  reply.previous_round = round_;
  reply.round = round;
  if (round == round_) {
    // A (re)started aggregator runs this round from its start: what clients
    // trained here before is of an attempt it lost.
    discard_unfinished_round();
    return reply;
  }
  if (round >= 1 && round - 1 == round_) {
    // The aggregator checkpointed round - 1 but its EndRound never arrived.
    reply.clients_averaged = end_round(round_, participants);
    return reply;
  }
  // An older checkpoint, or another run: unfinished copies are of no round
  // the aggregator knows.
  discard_unfinished_round();
  log_.warning("the aggregator's next round is " + std::to_string(round) + " but this server was in round " +
               std::to_string(round_) + ": moved to round " + std::to_string(round) +
               (round < round_ ? " (this server's adapters are from a later round of another run)"
                               : " (this server's adapters missed the rounds in between)"));
  round_ = round;
  save_checkpoint();
  return reply;
}

void SplitServer::discard_unfinished_round() {
  size_t trained = 0;
  for (const auto& [id, state] : clients_) trained += state->trained_this_round ? 1 : 0;
  // Every client says hello again (a site does so when told it is unknown)
  // and gets a fresh copy of global_ with a fresh optimizer (SFL-V1). In
  // SFL-V2 the shared copy cannot be rolled back: steps of the lost attempt
  // stay in it.
  clients_.clear();
  if (trained > 0) {
    log_.warning("discarded the unfinished round " + std::to_string(round_) + " of " + std::to_string(trained) +
                 " client(s): the aggregator runs it again" +
                 (options_.variant == ServerVariant::sfl_v2 ? " (SFL-V2: their steps stay in the shared adapters)"
                                                            : ""));
  }
}

uint32_t SplitServer::end_round(uint32_t round, const RoundSites& participants) {
  if (round != round_) {
    throw std::invalid_argument("cannot close round " + std::to_string(round) + ": the server is in round " +
                                std::to_string(round_));
  }
  const std::map<std::string, double> accepted = participant_weights(participants);
  auto takes_part = [&](const std::string& id, const ClientState& state) {
    return state.trained_this_round && (accepted.empty() || accepted.count(id) > 0);
  };
  auto weight_of = [&](const std::string& id) { return accepted.empty() ? 1.0 : accepted.at(id); };
  std::optional<metrics::PhaseScope> aggregation(std::in_place, cost_, metrics::Phase::aggregation);
  uint32_t averaged = 0;
  std::string product_note;
  if (options_.variant == ServerVariant::sfl_v1) {
    at::NoGradGuard no_grad;
    const lora::NamedTensors global = global_.to_named();   // on the CPU
    std::map<std::string, double> trained;   // client id -> weight
    for (auto& [id, state] : clients_) {
      // Left out: a site that died mid-round, or whose update was refused.
      if (takes_part(id, *state)) trained[id] = weight_of(id);
    }
    lora::NamedTensors sum = global;
    if (options_.lora.aggregation == lora::LoraAggregation::product) {
      // lora.aggregation product: per projection, the weighted mean of the
      // products of the clients that trained it, re-factored.
      double dropped = 0, total = 0;
      for (const auto& [name, global_pair] : global_.pairs()) {
        std::vector<lora::NamedTensors> copies;
        std::vector<double> weights;
        for (const auto& [id, weight] : trained) {
          const ClientState& state = *clients_.at(id);
          if (!covers(state.hello, end_layer(state.hello), lora::layer_of(name))) continue;
          const lora::LoraPair& pair = state.adapters.pairs().at(name);
          copies.push_back({{name + ".lora_a", pair.a}, {name + ".lora_b", pair.b}});
          weights.push_back(weight);
        }
        if (copies.empty()) continue;
        std::vector<const lora::NamedTensors*> pointers;
        for (const lora::NamedTensors& copy : copies) pointers.push_back(&copy);
        lora::ProductMean mean = lora::product_mean(pointers, weights, global_pair.a.size(0));
        dropped += mean.dropped_squared;
        total += mean.total_squared;
        for (auto& [tensor_name, tensor] : mean.adapters) sum[tensor_name] = std::move(tensor);
      }
      product_note = "; lora product truncation error " + std::to_string(total > 0 ? std::sqrt(dropped / total) : 0.0);
    } else if (!trained.empty()) {
      sum = merge_copies(round, global, trained);
    }
    global_.assign(sum);
    for (auto& [id, state] : clients_) {
      state->adapters.assign(sum);
      state->trained_this_round = false;
    }
    averaged = static_cast<uint32_t>(trained.size());
  } else {
    for (auto& [id, state] : clients_) {
      averaged += takes_part(id, *state) ? 1 : 0;
      state->trained_this_round = false;
    }
  }
  if (options_.release_clients_at_round_end) clients_.clear();
  ++round_;
  save_checkpoint();
  aggregation.reset();
  const metrics::RoleCost now = cost_.totals();
  const metrics::RoleCost round_cost = now - cost_at_round_start_;
  cost_at_round_start_ = now;
  log_.info("closed round " + std::to_string(round) + " (" + std::to_string(averaged) + " clients; " +
            std::to_string(label_bytes()) + " label bytes received in all" + product_note + "); cost " +
            metrics::describe_cost(round_cost));
  if (round_callback_) round_callback_(round);
  return averaged;
}

lora::NamedTensors SplitServer::merge_copies(uint32_t round, const lora::NamedTensors& global,
                                             const std::map<std::string, double>& trained) {
  // Each trained client's delta over the tensors of its blocks.
  std::map<std::string, lora::NamedTensors> deltas;
  for (const auto& [id, weight] : trained) {
    const ClientState& state = *clients_.at(id);
    lora::NamedTensors& delta = deltas[id];
    for (const auto& [name, pair] : state.adapters.pairs()) {
      if (!covers(state.hello, end_layer(state.hello), lora::layer_of(name))) continue;
      for (auto [suffix, tensor] : {std::pair{".lora_a", &pair.a}, std::pair{".lora_b", &pair.b}}) {
        const at::Tensor& start = global.at(name + suffix);
        delta[name + suffix] = tensor->to(start.device()) - start;
      }
    }
  }
  if (strategy_->needs_each_update()) {
    // Median, trimmed mean: over the clients that hold each tensor, so the
    // strategy runs once per group of tensors held by the same clients.
    std::map<std::vector<std::string>, std::vector<std::string>> groups;   // holders -> tensor names
    for (const auto& [name, tensor] : global) {
      std::vector<std::string> holders;
      for (const auto& [id, delta] : deltas) {
        if (delta.count(name)) holders.push_back(id);
      }
      if (!holders.empty()) groups[holders].push_back(name);
    }
    lora::NamedTensors next = global;
    for (const auto& [holders, names] : groups) {
      lora::NamedTensors part;
      for (const std::string& name : names) part[name] = global.at(name);
      std::vector<aggregator::ClientUpdate> updates;
      for (const std::string& id : holders) {
        aggregator::ClientUpdate update;   // weighted as the aggregator weighed it (robust rules ignore it)
        update.client_id = id;
        update.num_samples = std::max<int64_t>(1, std::llround(trained.at(id)));
        for (const std::string& name : names) update.delta[name] = deltas.at(id).at(name);
        updates.push_back(std::move(update));
      }
      for (auto& [name, tensor] : strategy_->aggregate(static_cast<int>(round), part, updates)) {
        next[name] = std::move(tensor);
      }
    }
    return next;
  }
  // FedAvg, FedProx, FedAdam, FedYogi: the weighted mean delta per tensor over
  // the clients that hold it (0 where none does) is the one update.
  lora::NamedTensors mean;
  for (const auto& [name, tensor] : global) {
    at::Tensor sum = at::zeros_like(tensor);
    double weight_sum = 0;
    for (const auto& [id, delta] : deltas) {
      const auto held = delta.find(name);
      if (held == delta.end()) continue;
      sum.add_(held->second, trained.at(id));
      weight_sum += trained.at(id);
    }
    mean[name] = weight_sum > 0 ? sum / weight_sum : sum;
  }
  aggregator::ClientUpdate merged;   // one update: the strategy needs no weight, and names no site
  merged.client_id = "mean of " + std::to_string(trained.size()) + " copies";
  merged.delta = std::move(mean);
  merged.num_samples = 1;
  return strategy_->aggregate(static_cast<int>(round), global, {merged});
}

void SplitServer::check_strategy(const std::string& aggregator_strategy) const {
  if (aggregator_strategy.empty() || options_.variant != ServerVariant::sfl_v1 ||
      aggregator_strategy == strategy_signature_) {
    return;
  }
  throw std::invalid_argument("the aggregator merges the sites' adapters with " + aggregator_strategy +
                              " but this SFL-V1 split server merges its copies with " + strategy_signature_ +
                              ": set split_server.strategy (and lora.aggregation) as the aggregator's");
}

GenerateOpenReply SplitServer::open_generation(const GenerateOpen& request) {
  const Hello site{request.client_id, request.base_fingerprint, request.mode, request.cut_layer, request.top_cut,
                   request.activation_codec, request.activation_codec};
  check_site(site);
  const int64_t L = model_->n_layers();
  const int64_t end = end_layer(site);
  if (request.adapters > static_cast<uint8_t>(GenerationAdapters::own)) {
    throw std::invalid_argument("unknown generation adapters " + std::to_string(request.adapters) +
                                " (0: the global adapters, 1: the site's own copy)");
  }
  if (static_cast<int64_t>(request.expected_adapters.size()) > 8 * L) {
    throw std::invalid_argument("a site expects at most " + std::to_string(8 * L) + " adapters of this model, not " +
                                std::to_string(request.expected_adapters.size()));
  }
  const lora::AdapterSet* source = &global_;
  if (request.adapters == static_cast<uint8_t>(GenerationAdapters::own)) {
    if (options_.variant == ServerVariant::sfl_v2) {
      throw std::invalid_argument("this split server runs SFL-V2: its one shared copy is the global adapters; "
                                  "generate with the global server adapters");
    }
    auto it = clients_.find(request.client_id);
    if (it == clients_.end()) {
      throw std::invalid_argument("this split server holds no adapter copy of " + request.client_id +
                                  " (it has not trained here since the server started or its copies were "
                                  "released at a round's end): generate with the global server adapters");
    }
    source = &it->second->adapters;
  }
  std::vector<std::string> missing;
  for (const std::string& name : request.expected_adapters) {
    // Multi-hop: the next hop checks the names of its blocks.
    if (lora::layer_of(name) < end && !source->adapts(name)) missing.push_back(name.substr(0, 128));
  }
  if (!missing.empty()) {
    std::string names;
    for (size_t i = 0; i < missing.size() && i < 4; ++i) names += (i ? ", " : "") + missing[i];
    if (missing.size() > 4) names += " and " + std::to_string(missing.size() - 4) + " more";
    int64_t first = L, last = -1;
    for (const auto& [name, pair] : source->pairs()) {
      first = std::min(first, lora::layer_of(name));
      last = std::max(last, lora::layer_of(name));
    }
    const std::string covered = last < 0 ? "no block" : "blocks " + std::to_string(first) + " to " + std::to_string(last);
    throw std::invalid_argument(
        "the split server has no adapters for " + names + " (" + std::to_string(missing.size()) + " of the " +
        std::to_string(request.expected_adapters.size()) + " the site's lora.targets expect over blocks [" +
        std::to_string(request.cut_layer) + ", " + std::to_string(end) + ")): its adapters cover " + covered +
        " (split_server.min_cut_layer " + std::to_string(options_.min_cut_layer) +
        ", lora.targets of its config or checkpoint); serve adapters trained for these blocks");
  }
  lora::AdapterSet snapshot =
      source->subset([&](int64_t layer) { return layer >= request.cut_layer && layer < end; });
  return generation_->open(request, std::move(snapshot), round_);
}

net::Bytes SplitServer::on_generate(MessageType type, const net::Bytes& request) {
  const auto code = static_cast<uint16_t>(type);
  switch (type) {
    case MessageType::generate_open: {
      GenerateOpenReply reply =
          open_generation(wire::unpack<GenerateOpen>(request, code, options_.max_message_bytes));
      reply.server_fingerprint = fingerprint_;
      return wire::pack(static_cast<uint16_t>(MessageType::generate_open_reply), reply);
    }
    case MessageType::generate_prefill:
    case MessageType::generate_step: {
      const GenerateInput input = wire::unpack<GenerateInput>(request, code, options_.max_message_bytes);
      // The served blocks' forward (its codec work is charged as codec).
      metrics::PhaseScope phase(metrics::Phase::forward);
      return wire::pack(static_cast<uint16_t>(MessageType::generate_reply),
                        generation_->feed(input, type == MessageType::generate_prefill));
    }
    default: {
      const GenerateClose close = wire::unpack<GenerateClose>(request, code, options_.max_message_bytes);
      return wire::pack(static_cast<uint16_t>(MessageType::generate_close_reply), generation_->close(close));
    }
  }
}

namespace {

// Beside the checkpoint: the strategy's state after the round the checkpoint
// closed (FedAdam/FedYogi moments), one file per round so the GGUF, written
// after it, stays the commit point.
std::string strategy_state_path(const std::string& checkpoint_path, uint32_t round) {
  return checkpoint_path + ".strategy-round-" + std::to_string(round) + ".safetensors";
}

}  // namespace

void SplitServer::save_checkpoint() const {
  if (options_.checkpoint_path.empty()) return;
  const uint32_t round = round_;
  const aggregator::NamedTensors state = strategy_->state();
  const std::string state_path = state.empty() ? "" : strategy_state_path(options_.checkpoint_path, round);
  if (!state.empty()) aggregator::save_strategy_state(state, state_path, round);
  lora::save_gguf(global_, *model_, options_.checkpoint_path,
                  {{"cleave.round", std::to_string(round)},
                   {"cleave.strategy", strategy_signature_},
                   {"cleave.strategy_state", fs::path(state_path).filename().string()}});
  if (round > 0) {
    std::error_code ignored;   // the previous round's state: no longer named by the checkpoint
    fs::remove(strategy_state_path(options_.checkpoint_path, round - 1), ignored);
  }
}

void SplitServer::resume_strategy(const std::string& saved_signature, const std::string& state_file) {
  if (!saved_signature.empty() && saved_signature != strategy_signature_) {
    throw std::invalid_argument(options_.checkpoint_path + " was written merging with " + saved_signature +
                                ", this server is set to " + strategy_signature_ +
                                ": resume with the checkpoint's split_server.strategy, or start a new checkpoint");
  }
  if (state_file.empty()) return;
  const std::string path = (fs::path(options_.checkpoint_path).parent_path() / state_file).string();
  if (!fs::exists(path)) {
    throw std::runtime_error(options_.checkpoint_path + " names the strategy state " + path +
                             ", which is missing: restore it beside the checkpoint, or start a new checkpoint");
  }
  strategy_->load_state(aggregator::load_strategy_state(path));
}

void SplitServer::serve(net::ServerChannel& channel, const std::atomic<bool>& stop, int poll_ms) {
  net::ServeLoop loop;
  loop.handle = [this](const net::PeerId& peer, const net::Bytes& request) { return handle(peer, request); };
  loop.log = log_;
  loop.poll_ms = poll_ms;
  loop.after_each = [this] {
    generation_->expire_idle();   // idle generation sessions go even when no request comes
    return false;
  };
  metrics::PhaseScope role(cost_, metrics::Phase::wire);   // polling, TLS and frames count as wire
  net::serve(channel, stop, loop);
}

}  // namespace cleave::split
