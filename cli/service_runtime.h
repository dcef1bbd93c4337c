// What the long-running commands share: a stop flag raised by SIGINT and
// SIGTERM, and one timestamped log line per event on stdout.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "cli/config_sections.h"
#include "metrics/http_endpoint.h"

namespace cleave::cli {

// Installs SIGINT and SIGTERM handlers (once per process) that raise the
// returned flag; the services' serve() loops check it and return, so the
// command exits cleanly (status 0) after its current request.
const std::atomic<bool>& stop_on_signals();

// Writes "<UTC time> <service>: <line>" to stdout and flushes, so a
// supervisor (or a test reading the pipe) sees each event as it happens.
// Safe to call from several threads.
void log_event(const std::string& service, const std::string& line);

// metrics.listen: serves `registry` (and /healthz, /readyz: not ready until
// the command says so) and logs `metrics on http://HOST:PORT`; null when
// metrics are off. Throws std::runtime_error naming metrics.listen when it
// cannot bind.
std::unique_ptr<metrics::HttpEndpoint> serve_metrics(const MetricsConfig& config, const metrics::Registry& registry,
                                                     const std::function<void(const std::string&)>& log);

// The process's heap as malloc sees it (mallinfo2), for a long-lived service
// to log every so many rounds: bytes in use against bytes held, so a leak
// (in use grows) and fragmentation (only held grows) tell apart.
std::string heap_report();

}  // namespace cleave::cli
