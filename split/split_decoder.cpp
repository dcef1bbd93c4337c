#include "split/split_decoder.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "split/server_exchange.h"
#include "split/tensor_wire.h"

namespace cleave::split {

SplitDecoder::SplitDecoder(std::shared_ptr<const LlamaModel> model, const LinearAdapters* site_adapters,
                           net::ClientChannel& channel, SplitDecoderOptions options)
    : model_(std::move(model)), site_adapters_(site_adapters), channel_(channel), options_(std::move(options)) {
  SplitClientOptions& split = options_.split;
  const int64_t L = model_->n_layers();
  if (split.mode == SplitMode::u_shaped && split.top_cut == 0) split.top_cut = static_cast<int32_t>(L - 1);
  split.validate(L);
  const int64_t context = std::max<int64_t>(1, model_->config().context_length);
  capacity_ = options_.capacity > 0 ? std::min(options_.capacity, context) : context;
  bottom_ = std::make_unique<KvCache>(model_->config(), 0, split.cut_layer, capacity_);
  if (split.mode == SplitMode::u_shaped) {
    top_ = std::make_unique<KvCache>(model_->config(), split.top_cut, L, capacity_);
  }
}

SplitDecoder::~SplitDecoder() {
  if (session_ == 0) return;
  try {
    options_.split.max_attempts = 1;
    close();
  } catch (const std::exception&) {
    // The server drops the session when it has been idle long enough.
  }
}

net::Bytes SplitDecoder::exchange(const net::Bytes& request, MessageType expected, uint32_t position) {
  ++requests_;
  const SplitClientOptions& options = options_.split;
  const StepKey key{options.client_id, position, session_};
  return exchange_with_server(channel_, options, bytes_, request, expected, key, [&](const net::Bytes& reply) {
    if (expected != MessageType::generate_reply) return true;
    const GenerateOutput output =
        wire::unpack<GenerateOutput>(reply, static_cast<uint16_t>(expected), options.max_message_bytes);
    return output.session == session_ && output.position == position;  // else a late reply to an earlier step
  });
}

void SplitDecoder::open() {
  if (session_ != 0) return;
  const SplitClientOptions& split = options_.split;
  GenerateOpen request;
  request.client_id = split.client_id;
  request.base_fingerprint = model_->base_fingerprint();
  request.mode = static_cast<uint8_t>(split.mode);
  request.cut_layer = split.cut_layer;
  request.top_cut = split.top_cut;
  request.activation_codec = static_cast<uint8_t>(split.activation_codec);
  request.adapters = static_cast<uint8_t>(options_.server_adapters);
  request.max_positions = static_cast<int32_t>(capacity_);
  request.expected_adapters = options_.expected_server_adapters;
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(MessageType::generate_open), request),
                                    MessageType::generate_open_reply, 0);
  const GenerateOpenReply opened = wire::unpack<GenerateOpenReply>(
      reply, static_cast<uint16_t>(MessageType::generate_open_reply), split.max_message_bytes);
  if (opened.session == 0) throw SplitError("split server answered the generation session with id 0");
  session_ = opened.session;
  server_round_ = opened.round;
  server_kv_bytes_ = opened.kv_bytes;
}

at::Tensor SplitDecoder::feed(const std::vector<TokenId>& tokens) {
  if (tokens.empty()) throw std::invalid_argument("SplitDecoder::feed: no tokens");
  open();
  const int64_t position = bottom_->length();
  const bool prefill = position == 0;
  if (!prefill && tokens.size() != 1) {
    throw std::invalid_argument("split generation feeds the prompt in one prefill, then one token per step");
  }
  at::NoGradGuard no_grad;
  const SplitClientOptions& split = options_.split;
  const std::vector<int64_t> ids(tokens.begin(), tokens.end());
  const int64_t T = static_cast<int64_t>(ids.size());
  const at::Tensor smashed =
      model_->run_blocks_cached(model_->embed(at::tensor(ids, at::kLong).unsqueeze(0)), *bottom_, site_adapters_);  // [1, T, dim]

  GenerateInput input;
  input.client_id = split.client_id;
  input.session = session_;
  input.position = static_cast<uint32_t>(position);
  input.hidden = to_wire(smashed, split.activation_codec);
  const MessageType type = prefill ? MessageType::generate_prefill : MessageType::generate_step;
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(type), input), MessageType::generate_reply,
                                    input.position);
  const GenerateOutput output = wire::unpack<GenerateOutput>(
      reply, static_cast<uint16_t>(MessageType::generate_reply), split.max_message_bytes);
  if (split.mode == SplitMode::vanilla) {
    return from_wire(output.tensor, {1, 1, model_->config().vocab_size}, "logits of the last position")[0][0];  // [vocab]
  }
  const at::Tensor top_input = from_wire(output.tensor, {1, T, model_->config().dim}, "activations at the top cut");
  const at::Tensor h = model_->run_blocks_cached(top_input, *top_, site_adapters_);  // [1, T, dim]
  return model_->head(h.narrow(1, T - 1, 1), site_adapters_)[0][0];                  // [vocab]
}

void SplitDecoder::restart() {
  // The next feed() is a prefill, which restarts the server's cache too.
  bottom_->clear();
  if (top_) top_->clear();
}

void SplitDecoder::close() {
  if (session_ == 0) return;
  const SplitClientOptions& split = options_.split;
  const net::Bytes reply = exchange(wire::pack(static_cast<uint16_t>(MessageType::generate_close),
                                               GenerateClose{split.client_id, session_}),
                                    MessageType::generate_close_reply, 0);
  (void)wire::unpack<GenerateCloseReply>(reply, static_cast<uint16_t>(MessageType::generate_close_reply),
                                         split.max_message_bytes);
  session_ = 0;
}

}  // namespace cleave::split
