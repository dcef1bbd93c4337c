// The HTTP side of metrics.listen: /metrics (the registry in Prometheus' text
// format), /healthz (the process is up: 200 "ok") and /readyz (200 once the
// service says it is ready, 503 with the reason until then), served by
// cpp-httplib on threads of its own. Every other path is 404.
#pragma once

#include <memory>
#include <string>

#include "metrics/registry.h"

namespace cleave::metrics {

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 0;                 // 0: any free port
};

// "HOST:PORT", ":PORT" or "PORT" (both 127.0.0.1), "[V6]:PORT". Throws
// std::invalid_argument naming `key`.
ListenAddress parse_listen(const std::string& text, const std::string& key = "metrics.listen");

class HttpEndpoint {
 public:
  // Binds `listen` and starts serving `registry` (which must outlive this).
  // Not ready until set_ready(). Throws std::runtime_error naming `key` when
  // the address is invalid or cannot be bound.
  HttpEndpoint(const Registry& registry, const std::string& listen, const std::string& key = "metrics.listen");
  ~HttpEndpoint();   // stops serving and joins its threads
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // /readyz's answer: 200, or 503 with `reason`. Any thread.
  void set_ready();
  void set_not_ready(const std::string& reason);

  const std::string& host() const;
  int port() const;           // the bound port (the free one picked for port 0)
  std::string url() const;    // http://HOST:PORT
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cleave::metrics
