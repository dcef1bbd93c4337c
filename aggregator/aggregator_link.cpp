#include "aggregator/aggregator_link.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace cleave::aggregator {

AggregatorLink::AggregatorLink(net::ClientChannel& channel, std::string client_id, LinkOptions options, Log log)
    : channel_(channel), client_id_(std::move(client_id)), options_(options), log_(std::move(log)) {
  if (!log_) log_ = [](const std::string&) {};
}

net::Bytes AggregatorLink::exchange(const net::Bytes& request, std::initializer_list<FederationMessage> expected) {
  const char* request_name = message_name(peek_message(request));
  int64_t backoff = options_.backoff_ms;
  std::string problem = "no reply";
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    try {
      channel_.send(request);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
      while (true) {
        const auto left = std::chrono::duration_cast<net::Millis>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::optional<net::Bytes> reply = channel_.recv(left);
        if (!reply) break;
        const FederationMessage type = peek_message(*reply);
        if (type == FederationMessage::error ||
            std::find(expected.begin(), expected.end(), type) != expected.end()) {
          return std::move(*reply);
        }
        // Anything else is a late reply to an earlier request: keep waiting.
      }
      problem = "no reply within " + std::to_string(options_.request_timeout_ms) + " ms";
    } catch (const net::TransportError& e) {
      problem = e.what();
    }
    if (attempt == options_.max_attempts) break;
    log_(std::string(request_name) + " to " + channel_.describe() + " failed (" + problem + "); retrying in " +
         std::to_string(backoff) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
    try {
      channel_.reconnect();   // a fresh connection; replies to the old one are dropped
    } catch (const net::TransportError& e) {
      problem = e.what();
    }
  }
  throw FederationError("the aggregator at " + channel_.describe() + " did not answer " + request_name + " after " +
                        std::to_string(options_.max_attempts) + " attempts (" + problem + "): is it running?");
}

RegisterReply AggregatorLink::register_site(const std::string& base_fingerprint, int64_t num_samples,
                                            split::SiteBlocks blocks) {
  const Register hello{client_id_, base_fingerprint, num_samples, static_cast<uint8_t>(blocks.layout),
                       blocks.cut_layer, blocks.top_cut};
  const net::Bytes reply = exchange(pack_message(FederationMessage::register_client, hello),
                                    {FederationMessage::register_reply});
  if (peek_message(reply) == FederationMessage::error) {
    const auto error = unpack_message<FederationErrorReply>(reply, FederationMessage::error, options_.max_message_bytes);
    throw FederationError("the aggregator refused site " + client_id_ + ": " + error.message);
  }
  const auto done = unpack_message<RegisterReply>(reply, FederationMessage::register_reply, options_.max_message_bytes);
  log_("registered with " + channel_.describe() + " (round " + std::to_string(done.round) + " of " +
       std::to_string(done.total_rounds) + ")");
  return done;
}

}  // namespace cleave::aggregator
