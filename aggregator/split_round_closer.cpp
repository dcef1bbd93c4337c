#include "aggregator/split_round_closer.h"

#include <algorithm>
#include <stdexcept>

#include "split/split_messages.h"
#include "transport/request_retry.h"
#include "wire/frame.h"

namespace cleave::aggregator {

ChannelSplitRoundCloser::ChannelSplitRoundCloser(std::unique_ptr<net::ClientChannel> channel,
                                                 SplitCloseOptions options)
    : channel_(std::move(channel)), options_(options) {
  if (!channel_) throw std::invalid_argument("ChannelSplitRoundCloser needs a channel");
  if (options_.timeout_ms < 1 || options_.max_attempts < 1 || options_.backoff_ms < 0) {
    throw std::invalid_argument("split close options: timeout_ms and max_attempts must be >= 1, backoff_ms >= 0");
  }
}

net::Bytes ChannelSplitRoundCloser::request(const net::Bytes& request, uint16_t reply_type,
                                            const std::function<bool(const net::Bytes&)>& matches,
                                            const std::string& what) {
  using split::MessageType;
  net::RetryOptions retry;
  retry.timeout_ms = options_.timeout_ms;
  retry.max_attempts = options_.max_attempts;
  retry.backoff_ms = options_.backoff_ms;
  retry.max_backoff_ms = std::max<int64_t>(options_.backoff_ms, options_.max_backoff_ms);
  retry.stop = stop_;
  net::RetryFailure failure;
  net::RetryLog on_retry;
  if (options_.log.passes(LogLevel::warning)) {
    on_retry = [&](int attempt, const std::string& problem, int64_t backoff_ms) {
      options_.log.warning("split server at " + describe() + " did not confirm that it will " + what +
                           " (attempt " + std::to_string(attempt) + " of " + std::to_string(options_.max_attempts) +
                           ": " + problem + "); retrying in " + std::to_string(backoff_ms) + " ms");
    };
  }
  const std::optional<net::Bytes> reply = net::request_with_retry(
      *channel_, request, retry,
      [&](const net::Bytes& candidate) {
        const uint16_t type = wire::peek(candidate).type;
        if (type == static_cast<uint16_t>(MessageType::error)) {
          const auto error = wire::unpack<split::ErrorReply>(candidate, static_cast<uint16_t>(MessageType::error),
                                                             options_.max_message_bytes);
          throw std::runtime_error("split server at " + describe() + " refused to " + what + ": " + error.message +
                                   " (is it in step with this aggregator? restart both from their checkpoints)");
        }
        if (type != reply_type) return net::ReplyVerdict::skip;                 // a late reply to something else
        return matches(candidate) ? net::ReplyVerdict::take : net::ReplyVerdict::skip;   // or to an earlier request
      },
      &failure, on_retry);
  if (reply) return *reply;
  throw std::runtime_error("split server at " + describe() + " did not confirm that it will " + what + " after " +
                           std::to_string(options_.max_attempts) + " attempts of " +
                           std::to_string(options_.timeout_ms) + " ms (" + failure.problem + "): is it running?");
}

uint32_t ChannelSplitRoundCloser::close(uint32_t round, const split::RoundSites& participants) {
  using split::MessageType;
  const auto reply_type = static_cast<uint16_t>(MessageType::end_round_reply);
  auto unpack = [&](const net::Bytes& frame) {
    return wire::unpack<split::EndRoundReply>(frame, reply_type, options_.max_message_bytes);
  };
  const net::Bytes reply = request(
      wire::pack(static_cast<uint16_t>(MessageType::end_round), split::EndRound{round, participants, options_.strategy}), reply_type,
      [&](const net::Bytes& frame) { return unpack(frame).round == round; }, "close round " + std::to_string(round));
  return unpack(reply).clients_averaged;
}

SplitRoundCloser::Synced ChannelSplitRoundCloser::sync(uint32_t round, const split::RoundSites& participants) {
  using split::MessageType;
  const auto reply_type = static_cast<uint16_t>(MessageType::sync_round_reply);
  auto unpack = [&](const net::Bytes& frame) {
    return wire::unpack<split::SyncRoundReply>(frame, reply_type, options_.max_message_bytes);
  };
  const net::Bytes reply = request(
      wire::pack(static_cast<uint16_t>(MessageType::sync_round), split::SyncRound{round, participants, options_.strategy}), reply_type,
      [&](const net::Bytes& frame) { return unpack(frame).round == round; }, "move to round " + std::to_string(round));
  const split::SyncRoundReply synced = unpack(reply);
  return Synced{synced.previous_round, synced.clients_averaged};
}

}  // namespace cleave::aggregator
