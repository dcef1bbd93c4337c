// The loop every service runs: take a request, answer it, repeat until told
// to stop. It never waits on a peer (ServerChannel::send does not block), so
// a peer that never reads costs one lost reply and a log line, never the
// service; the stop flag is looked at at least every poll_ms.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "transport/channel.h"
#include "util/log.h"

namespace cleave::net {

struct ServeLoop {
  // The service's answer to one request (never throws for bad input: it
  // answers with an error message instead).
  std::function<Bytes(const PeerId& peer, const Bytes& request)> handle;
  // Called after each request and each idle poll; true ends the loop (the
  // service's own reason to stop, e.g. a finished run). Optional.
  std::function<bool()> after_each;
  // Where undeliverable replies are reported, as warnings (rate-limited: 10
  // lines per 10 s).
  Log log;
  int poll_ms = 100;
};

// Serves until `stop` is set or loop.after_each says so.
void serve(ServerChannel& channel, const std::atomic<bool>& stop, const ServeLoop& loop);

}  // namespace cleave::net
