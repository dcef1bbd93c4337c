#include "split/split_client.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "lora/adapter_set.h"
#include "metrics/cost_meter.h"
#include "model/llama_model.h"
#include "model/loss.h"
#include "split/server_exchange.h"
#include "split/tensor_wire.h"

namespace cleave::split {

void SplitClientOptions::validate(int64_t n_layers) const {
  if (client_id.empty()) throw std::invalid_argument("split.client_id must not be empty");
  if (cut_layer < 1 || cut_layer >= n_layers) {
    throw std::invalid_argument("split.cut_layer must be in [1, " + std::to_string(n_layers - 1) +
                                "], got " + std::to_string(cut_layer));
  }
  if (mode == SplitMode::u_shaped && (top_cut <= cut_layer || top_cut > n_layers)) {
    throw std::invalid_argument("split.top_cut must be in (cut_layer, " + std::to_string(n_layers) +
                                "], got " + std::to_string(top_cut));
  }
  if (timeout_ms < 1) throw std::invalid_argument("split.timeout_ms must be >= 1");
  if (max_attempts < 1) throw std::invalid_argument("split.max_attempts must be >= 1");
  if (backoff_ms < 0 || max_backoff_ms < backoff_ms) {
    throw std::invalid_argument("split.backoff_ms must be >= 0 and split.max_backoff_ms >= split.backoff_ms");
  }
  protection.validate("split.");
}

SplitTrainStep::SplitTrainStep(std::shared_ptr<const LlamaModel> model, lora::AdapterSet& adapters,
                               net::ClientChannel& channel, SplitClientOptions options)
    : model_(std::move(model)),
      adapters_(adapters),
      channel_(channel),
      options_(std::move(options)),
      protector_(options_.protection) {
  if (options_.mode == SplitMode::u_shaped && options_.top_cut == 0) {
    options_.top_cut = static_cast<int32_t>(model_->n_layers() - 1);
  }
  options_.validate(model_->n_layers());
}

net::Bytes SplitTrainStep::exchange(const net::Bytes& request, MessageType expected, const StepKey& key) {
  return exchange_with_server(channel_, options_, bytes_, request, expected, key);
}

void SplitTrainStep::connect() {
  if (connected_) return;
  Hello hello;
  hello.client_id = options_.client_id;
  hello.base_fingerprint = model_->base_fingerprint();
  hello.mode = static_cast<uint8_t>(options_.mode);
  hello.cut_layer = options_.cut_layer;
  hello.top_cut = options_.top_cut;
  hello.activation_codec = static_cast<uint8_t>(options_.activation_codec);
  hello.gradient_codec = static_cast<uint8_t>(options_.gradient_codec);
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(MessageType::hello), hello),
                                    MessageType::hello_reply, StepKey{options_.client_id, 0, 0});
  server_round_ = wire::unpack<HelloReply>(reply, static_cast<uint16_t>(MessageType::hello_reply),
                                           options_.max_message_bytes)
                      .round;
  connected_ = true;
}

StepResult SplitTrainStep::forward_backward(const data::Batch& batch, const StepContext& context) {
  try {
    return step_once(batch, context);
  } catch (const SplitSessionLost&) {
    // A restarted split server (or one that released this client) knows
    // nothing of it: say hello again and redo the whole step from a clean
    // gradient, once.
    connected_ = false;
    at::NoGradGuard no_grad;
    for (at::Tensor& p : adapters_.parameters()) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
  }
  return step_once(batch, context);
}

StepResult SplitTrainStep::step_once(const data::Batch& batch, const StepContext& context) {
  connect();
  const BatchTensors t = to_tensors(batch);
  const int64_t B = batch.batch_size, T = batch.seq_len, dim = model_->config().dim;
  adapters_.set_training(true);
  const BlockActivations activations =
      options_.recompute ? BlockActivations::recomputed : BlockActivations::saved;
  // Bottom: embeddings and blocks [0, cut). Phases are charged to the site's
  // meter when it runs as a role (aggregator::FederatedClient).
  metrics::PhaseScope phase(metrics::Phase::forward);
  const at::Tensor smashed = model_->run_blocks(model_->embed(t.inputs), 0, options_.cut_layer, &adapters_,
                                                /*pos0=*/0, activations);  // [B, T, dim]
  // What leaves the site: clipped and noised when split.activation_clip is set.
  at::Tensor sent = protector_.apply(smashed);  // [B, T, dim]

  ForwardRequest request;
  request.key = StepKey{options_.client_id, context.round, static_cast<uint64_t>(context.step)};
  request.smashed = to_wire(sent, options_.activation_codec,
                            step_rounding(options_.stochastic_rounding, request.key.client_id, request.key.round,
                                          request.key.step, TensorStream::activations_up));
  request.lr = context.lr;
  request.grad_clip = context.grad_clip;
  if (options_.mode == SplitMode::vanilla) {
    request.targets = batch.targets;
    request.weights = batch.weights;
    label_bytes_ += request.targets.size() * sizeof(int32_t) + request.weights.size() * sizeof(float);
  }
  const net::Bytes reply_frame =
      exchange(wire::pack(static_cast<uint16_t>(MessageType::forward), request), MessageType::forward_reply, request.key);
  const ForwardReply reply = wire::unpack<ForwardReply>(
      reply_frame, static_cast<uint16_t>(MessageType::forward_reply), options_.max_message_bytes);

  if (options_.mode == SplitMode::vanilla) {
    at::Tensor grad = from_wire(reply.tensor, {B, T, dim}, "gradient of the smashed activations");
    phase.switch_to(metrics::Phase::backward);
    sent.backward(grad.to(sent.options()));  // wire: CPU float32
    return {reply.loss, reply.n_scored};
  }
  // U-shaped: the top blocks, the head and the loss stay here.
  at::Tensor top_input =
      from_wire(reply.tensor, {B, T, dim}, "activations at the top cut").requires_grad_(true);
  at::Tensor h = model_->run_blocks(top_input, options_.top_cut, model_->n_layers(), &adapters_,
                                    /*pos0=*/0, activations);
  LossResult loss = model_->head_loss(h, t.targets, t.weights, &adapters_);  // no [B, T, vocab] logits
  phase.switch_to(metrics::Phase::backward);
  loss.loss.backward();
  BackwardRequest back;
  back.key = request.key;
  back.grad = to_wire(top_input.grad(), options_.gradient_codec,
                      step_rounding(options_.stochastic_rounding, back.key.client_id, back.key.round, back.key.step,
                                    TensorStream::gradients_up));
  const net::Bytes back_frame =
      exchange(wire::pack(static_cast<uint16_t>(MessageType::backward), back), MessageType::backward_reply, back.key);
  const BackwardReply back_reply = wire::unpack<BackwardReply>(
      back_frame, static_cast<uint16_t>(MessageType::backward_reply), options_.max_message_bytes);
  sent.backward(
      from_wire(back_reply.grad, {B, T, dim}, "gradient of the smashed activations").to(sent.options()));
  return {loss.loss.item<double>(), loss.n_scored};
}

std::vector<at::Tensor> SplitTrainStep::parameters() const { return adapters_.parameters(); }

uint32_t SplitTrainStep::end_round(uint32_t round, const RoundSites& participants) {
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(MessageType::end_round), EndRound{round, participants, ""}),
                                    MessageType::end_round_reply, StepKey{});
  return wire::unpack<EndRoundReply>(reply, static_cast<uint16_t>(MessageType::end_round_reply),
                                     options_.max_message_bytes)
      .clients_averaged;
}

}  // namespace cleave::split
