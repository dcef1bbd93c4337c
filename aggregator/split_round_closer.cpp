#include "aggregator/split_round_closer.h"

#include <algorithm>
#include <stdexcept>

#include "split/split_messages.h"
#include "split/wire_frame.h"
#include "transport/request_retry.h"

namespace cleave::aggregator {

ChannelSplitRoundCloser::ChannelSplitRoundCloser(std::unique_ptr<net::ClientChannel> channel,
                                                 SplitCloseOptions options)
    : channel_(std::move(channel)), options_(options) {
  if (!channel_) throw std::invalid_argument("ChannelSplitRoundCloser needs a channel");
  if (options_.timeout_ms < 1 || options_.max_attempts < 1 || options_.backoff_ms < 0) {
    throw std::invalid_argument("split close options: timeout_ms and max_attempts must be >= 1, backoff_ms >= 0");
  }
}

uint32_t ChannelSplitRoundCloser::close(uint32_t round) {
  using split::MessageType;
  const net::Bytes request = wire::pack(static_cast<uint16_t>(MessageType::end_round), split::EndRound{round});
  net::RetryOptions retry;
  retry.timeout_ms = options_.timeout_ms;
  retry.max_attempts = options_.max_attempts;
  retry.backoff_ms = options_.backoff_ms;
  retry.max_backoff_ms = std::max<int64_t>(options_.backoff_ms, options_.max_backoff_ms);
  uint32_t averaged = 0;
  net::RetryFailure failure;
  const std::optional<net::Bytes> reply = net::request_with_retry(
      *channel_, request, retry,
      [&](const net::Bytes& candidate) {
        const auto type = static_cast<MessageType>(wire::peek(candidate).type);
        if (type == MessageType::error) {
          const auto error = wire::unpack<split::ErrorReply>(candidate, static_cast<uint16_t>(MessageType::error),
                                                             options_.max_message_bytes);
          throw std::runtime_error("split server at " + describe() + " refused to close round " +
                                   std::to_string(round) + ": " + error.message +
                                   " (is it in step with this aggregator? restart both from their checkpoints)");
        }
        if (type != MessageType::end_round_reply) return net::ReplyVerdict::skip;   // a late reply to something else
        const auto done = wire::unpack<split::EndRoundReply>(
            candidate, static_cast<uint16_t>(MessageType::end_round_reply), options_.max_message_bytes);
        if (done.round != round) return net::ReplyVerdict::skip;                    // a late reply to an earlier close
        averaged = done.clients_averaged;
        return net::ReplyVerdict::take;
      },
      &failure);
  if (reply) return averaged;
  throw std::runtime_error("split server at " + describe() + " did not confirm the end of round " +
                           std::to_string(round) + " after " + std::to_string(options_.max_attempts) +
                           " attempts of " + std::to_string(options_.timeout_ms) + " ms (" + failure.problem +
                           "): is it running?");
}

}  // namespace cleave::aggregator
