#include "transport/serve_loop.h"

#include <stdexcept>

#include "transport/rate_limited_log.h"

namespace cleave::net {

void serve(ServerChannel& channel, const std::atomic<bool>& stop, const ServeLoop& loop) {
  if (!loop.handle) throw std::invalid_argument("serve: ServeLoop.handle is empty");
  if (loop.poll_ms < 1) throw std::invalid_argument("serve: ServeLoop.poll_ms must be >= 1");
  RateLimitedLog lost_replies(loop.log, "undeliverable replies");
  while (!stop.load()) {
    if (std::optional<Envelope> request = channel.recv(Millis(loop.poll_ms))) {
      Bytes reply = loop.handle(request->peer, request->payload);
      try {
        channel.send(request->peer, std::move(reply));
      } catch (const TransportError& e) {
        lost_replies(std::string("could not reply: ") + e.what());
      }
    } else {
      lost_replies.flush();
    }
    if (loop.after_each && loop.after_each()) return;
  }
}

}  // namespace cleave::net
