#include "split/next_hop.h"

#include <ATen/ATen.h>

#include "lora/lora_options.h"
#include "split/server_exchange.h"
#include "split/tensor_wire.h"

namespace cleave::split {

void NextHopOptions::validate(int64_t min_cut_layer, int64_t n_layers) const {
  if (!enabled()) return;
  if (address.empty()) throw std::invalid_argument("split_server.next.address is missing: the next split server's endpoint");
  if (cut_layer <= min_cut_layer || cut_layer >= n_layers) {
    throw std::invalid_argument("split_server.next.cut_layer " + std::to_string(cut_layer) + " must be in (" +
                                std::to_string(min_cut_layer) + ", " + std::to_string(n_layers) +
                                "): above this server's split_server.min_cut_layer and below the model's " +
                                std::to_string(n_layers) + " blocks");
  }
  if (timeout_ms < 1 || max_attempts < 1) {
    throw std::invalid_argument("split_server.next.timeout_ms and max_attempts must be >= 1");
  }
}

NextHop::NextHop(std::unique_ptr<net::ClientChannel> channel, NextHopOptions options, size_t max_message_bytes,
                 const std::atomic<bool>* stop)
    : channel_(std::move(channel)), options_(std::move(options)) {
  exchange_options_.timeout_ms = options_.timeout_ms;
  exchange_options_.max_attempts = options_.max_attempts;
  exchange_options_.max_message_bytes = max_message_bytes;
  exchange_options_.stop = stop;
}

NextHop::~NextHop() = default;

std::string NextHop::describe() const {
  return "the next split server (blocks from " + std::to_string(options_.cut_layer) + ") at " + channel_->describe();
}

net::Bytes NextHop::exchange(const net::Bytes& request, MessageType expected, const StepKey& key) {
  try {
    return exchange_with_server(*channel_, exchange_options_, bytes_, request, expected, key);
  } catch (const SplitSessionLost&) {
    throw;   // the site says hello again, and this hop relays it
  } catch (const SplitError& e) {
    throw SplitError(describe() + ": " + e.what());
  }
}

void NextHop::hello(const Hello& site) {
  Hello relayed = site;
  relayed.cut_layer = options_.cut_layer;
  relayed.activation_codec = static_cast<uint8_t>(options_.activation_codec);
  relayed.gradient_codec = static_cast<uint8_t>(options_.gradient_codec);
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(MessageType::hello), relayed),
                                    MessageType::hello_reply, StepKey{site.client_id, 0, 0});
  (void)wire::unpack<HelloReply>(reply, static_cast<uint16_t>(MessageType::hello_reply),
                                 exchange_options_.max_message_bytes);
}

NextHop::Forwarded NextHop::forward(const ForwardRequest& site_request, const at::Tensor& hidden, const Hello& site) {
  ForwardRequest relayed;
  relayed.key = site_request.key;
  relayed.smashed = to_wire(hidden, options_.activation_codec);
  relayed.targets = site_request.targets;
  relayed.weights = site_request.weights;
  relayed.lr = site_request.lr;
  relayed.grad_clip = site_request.grad_clip;
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::forward), relayed),
                                    MessageType::forward_reply, relayed.key);
  const ForwardReply reply = wire::unpack<ForwardReply>(frame, static_cast<uint16_t>(MessageType::forward_reply),
                                                        exchange_options_.max_message_bytes);
  Forwarded forwarded;
  forwarded.loss = reply.loss;
  forwarded.n_scored = reply.n_scored;
  const bool u_shaped = site.mode == static_cast<uint8_t>(SplitMode::u_shaped);
  forwarded.tensor = from_wire(reply.tensor, hidden.sizes().vec(),
                               u_shaped ? "activations at the top cut" : "gradient at the next hop's cut");
  return forwarded;
}

at::Tensor NextHop::backward(const StepKey& key, const at::Tensor& grad_at_top,
                             const std::vector<int64_t>& hidden_shape) {
  BackwardRequest request;
  request.key = key;
  request.grad = to_wire(grad_at_top, options_.gradient_codec);
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::backward), request),
                                    MessageType::backward_reply, key);
  const BackwardReply reply = wire::unpack<BackwardReply>(frame, static_cast<uint16_t>(MessageType::backward_reply),
                                                          exchange_options_.max_message_bytes);
  return from_wire(reply.grad, hidden_shape, "gradient at the next hop's cut");
}

EndRoundReply NextHop::end_round(const EndRound& request) {
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::end_round), request),
                                    MessageType::end_round_reply, StepKey{});
  return wire::unpack<EndRoundReply>(frame, static_cast<uint16_t>(MessageType::end_round_reply),
                                     exchange_options_.max_message_bytes);
}

SyncRoundReply NextHop::sync_round(const SyncRound& request) {
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::sync_round), request),
                                    MessageType::sync_round_reply, StepKey{});
  return wire::unpack<SyncRoundReply>(frame, static_cast<uint16_t>(MessageType::sync_round_reply),
                                      exchange_options_.max_message_bytes);
}

uint64_t NextHop::open_generation(const GenerateOpen& request) {
  GenerateOpen relayed = request;
  relayed.cut_layer = options_.cut_layer;
  relayed.activation_codec = static_cast<uint8_t>(options_.activation_codec);
  relayed.expected_adapters.clear();
  for (const std::string& name : request.expected_adapters) {
    if (lora::layer_of(name) >= options_.cut_layer) relayed.expected_adapters.push_back(name);
  }
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::generate_open), relayed),
                                    MessageType::generate_open_reply, StepKey{request.client_id, 0, 0});
  const GenerateOpenReply reply = wire::unpack<GenerateOpenReply>(
      frame, static_cast<uint16_t>(MessageType::generate_open_reply), exchange_options_.max_message_bytes);
  if (reply.session == 0) throw SplitError(describe() + " answered the generation session with id 0");
  return reply.session;
}

at::Tensor NextHop::feed(const std::string& client_id, uint64_t session, uint32_t position, const at::Tensor& hidden,
                         bool prefill) {
  GenerateInput input;
  input.client_id = client_id;
  input.session = session;
  input.position = position;
  input.hidden = to_wire(hidden, options_.activation_codec);
  const MessageType type = prefill ? MessageType::generate_prefill : MessageType::generate_step;
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(type), input), MessageType::generate_reply,
                                    StepKey{client_id, position, session});
  const GenerateOutput output = wire::unpack<GenerateOutput>(
      frame, static_cast<uint16_t>(MessageType::generate_reply), exchange_options_.max_message_bytes);
  return from_wire(output.tensor, {1, -1, -1}, "the next hop's generation output");
}

void NextHop::close_generation(const std::string& client_id, uint64_t session) {
  const net::Bytes frame = exchange(wire::pack(static_cast<uint16_t>(MessageType::generate_close),
                                               GenerateClose{client_id, session}),
                                    MessageType::generate_close_reply, StepKey{client_id, 0, session});
  (void)wire::unpack<GenerateCloseReply>(frame, static_cast<uint16_t>(MessageType::generate_close_reply),
                                         exchange_options_.max_message_bytes);
}

}  // namespace cleave::split
