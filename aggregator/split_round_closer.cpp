#include "aggregator/split_round_closer.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "split/split_messages.h"
#include "split/wire_frame.h"

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
  int64_t backoff = options_.backoff_ms;
  std::string last_problem = "no reply";
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    try {
      channel_->send(request);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
      while (true) {
        const auto left = std::chrono::duration_cast<net::Millis>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::optional<net::Bytes> reply = channel_->recv(left);
        if (!reply) break;
        const auto type = static_cast<MessageType>(wire::peek(*reply).type);
        if (type == MessageType::error) {
          const auto error = wire::unpack<split::ErrorReply>(*reply, static_cast<uint16_t>(MessageType::error),
                                                             options_.max_message_bytes);
          throw std::runtime_error("split server at " + describe() + " refused to close round " +
                                   std::to_string(round) + ": " + error.message +
                                   " (is it in step with this aggregator? restart both from their checkpoints)");
        }
        if (type != MessageType::end_round_reply) continue;   // a late reply to something else
        const auto done = wire::unpack<split::EndRoundReply>(
            *reply, static_cast<uint16_t>(MessageType::end_round_reply), options_.max_message_bytes);
        if (done.round != round) continue;                    // a late reply to an earlier close
        return done.clients_averaged;
      }
    } catch (const net::TransportError& e) {
      last_problem = e.what();
    }
    if (attempt == options_.max_attempts) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min<int64_t>(backoff * 2, 5000);
    try {
      channel_->reconnect();
    } catch (const net::TransportError& e) {
      last_problem = e.what();
    }
  }
  throw std::runtime_error("split server at " + describe() + " did not confirm the end of round " +
                           std::to_string(round) + " after " + std::to_string(options_.max_attempts) +
                           " attempts of " + std::to_string(options_.timeout_ms) + " ms (" + last_problem +
                           "): is it running?");
}

}  // namespace cleave::aggregator
