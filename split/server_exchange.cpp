#include "split/server_exchange.h"

#include <algorithm>

#include "metrics/cost_meter.h"
#include "transport/request_retry.h"

namespace cleave::split {

net::Bytes exchange_with_server(net::ClientChannel& channel, const SplitClientOptions& options,
                                wire::ByteCounter& bytes, const net::Bytes& request, MessageType expected,
                                const StepKey& key, const std::function<bool(const net::Bytes&)>& answers) {
  // While the caller waits its split server computes: the server's cost, not the caller's.
  metrics::PhaseScope phase(metrics::Phase::wire);
  const std::string request_name = message_name(static_cast<MessageType>(wire::peek(request).type));
  bytes.add(request_name, wire::Direction::sent, request.size());
  net::RetryOptions retry;
  retry.timeout_ms = options.timeout_ms;
  retry.max_attempts = options.max_attempts;
  retry.backoff_ms = options.backoff_ms;
  retry.max_backoff_ms = std::max(options.backoff_ms, options.max_backoff_ms);
  retry.stop = options.stop;
  // A repeated request is answered from the server's stored reply (or, for a
  // prefill, redone from the start), so resending is safe.
  net::RetryFailure failure;
  const std::optional<net::Bytes> reply = net::request_with_retry(
      channel, request, retry, [&](const net::Bytes& candidate) {
        const auto type = static_cast<MessageType>(wire::peek(candidate).type);
        if (type == MessageType::error) {
          const ErrorReply error = wire::unpack<ErrorReply>(candidate, static_cast<uint16_t>(MessageType::error),
                                                            options.max_message_bytes);
          if (!error.key.client_id.empty() && !(error.key == key)) return net::ReplyVerdict::skip;  // an earlier attempt's
          if (error.code == static_cast<uint8_t>(ErrorCode::unknown_client)) {
            throw SplitSessionLost("split server lost this client's session: " + error.message);
          }
          throw SplitError("split server refused " + request_name + ": " + error.message);
        }
        if (type != expected) return net::ReplyVerdict::skip;  // a late reply to an earlier request
        if (answers && !answers(candidate)) return net::ReplyVerdict::skip;
        return net::ReplyVerdict::take;
      },
      &failure);
  if (!reply) {
    // The last attempt's problem: no reply in time, or what the channel said
    // (a refused TLS handshake names the certificate it did not accept).
    throw SplitError("split server at " + channel.describe() + " did not answer " + request_name + " after " +
                     std::to_string(options.max_attempts) + " attempts of " + std::to_string(options.timeout_ms) +
                     " ms (last: " + failure.problem + ")");
  }
  bytes.add(message_name(expected), wire::Direction::received, reply->size());
  return *reply;
}

}  // namespace cleave::split
