#include "aggregator/aggregator_link.h"

#include <algorithm>

#include "metrics/cost_meter.h"
#include "transport/request_retry.h"

namespace cleave::aggregator {

AggregatorLink::AggregatorLink(net::ClientChannel& channel, std::string client_id, LinkOptions options, Log log)
    : channel_(channel), client_id_(std::move(client_id)), options_(options), log_(std::move(log)) {}

net::Bytes AggregatorLink::exchange(const net::Bytes& request, std::initializer_list<FederationMessage> expected) {
  metrics::PhaseScope phase(metrics::Phase::wire);   // the site's, while the aggregator works
  const char* request_name = message_name(peek_message(request));
  net::RetryOptions retry;
  retry.timeout_ms = options_.request_timeout_ms;
  retry.max_attempts = options_.max_attempts;
  retry.backoff_ms = options_.backoff_ms;
  retry.max_backoff_ms = options_.max_backoff_ms;
  retry.stop = options_.stop;
  net::RetryFailure failure;
  const std::optional<net::Bytes> reply = net::request_with_retry(
      channel_, request, retry,
      [&](const net::Bytes& candidate) {
        const FederationMessage type = peek_message(candidate);
        const bool wanted = type == FederationMessage::error ||
                            std::find(expected.begin(), expected.end(), type) != expected.end();
        // Anything else is a late reply to an earlier request: keep waiting.
        return wanted ? net::ReplyVerdict::take : net::ReplyVerdict::skip;
      },
      &failure,
      [&](int, const std::string& problem, int64_t backoff) {
        log_.warning(std::string(request_name) + " to " + channel_.describe() + " failed (" + problem +
                     "); retrying in " + std::to_string(backoff) + " ms");
      });
  if (reply) return *reply;
  throw FederationError("the aggregator at " + channel_.describe() + " did not answer " + request_name + " after " +
                        std::to_string(options_.max_attempts) + " attempts (" + failure.problem + "): is it running?");
}

RegisterReply AggregatorLink::register_site(const std::string& base_fingerprint, int64_t num_samples,
                                            split::SiteBlocks blocks, const lora::LoraOptions& lora) {
  const Register hello{client_id_,      base_fingerprint,
                       num_samples,     static_cast<uint8_t>(blocks.layout),
                       blocks.cut_layer, blocks.top_cut,
                       static_cast<int32_t>(lora.rank), lora.alpha};
  const net::Bytes reply = exchange(pack_message(FederationMessage::register_client, hello),
                                    {FederationMessage::register_reply});
  if (peek_message(reply) == FederationMessage::error) {
    const auto error = unpack_message<FederationErrorReply>(reply, FederationMessage::error, options_.max_message_bytes);
    throw FederationError("the aggregator refused site " + client_id_ + ": " + error.message);
  }
  const auto done = unpack_message<RegisterReply>(reply, FederationMessage::register_reply, options_.max_message_bytes);
  log_.info("registered with " + channel_.describe() + " (round " + std::to_string(done.round) + " of " +
            std::to_string(done.total_rounds) + ")");
  return done;
}

}  // namespace cleave::aggregator
