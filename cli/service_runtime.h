// What the long-running commands share: a stop flag raised by SIGINT and
// SIGTERM, and one timestamped log line per event on stdout, from
// --log-level (or logging.level) up.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "util/args.h"
#include "cli/config_sections.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "util/log.h"

namespace cleave::cli {

// Installs SIGINT and SIGTERM handlers (once per process) that raise the
// returned flag; the services' serve() loops check it and return, so the
// command exits cleanly (status 0) after its current request.
const std::atomic<bool>& stop_on_signals();

// The log of a long-running command: "<UTC time> <LEVEL> <service>: <line>"
// on stdout, flushed, so a supervisor (or a test reading the pipe) sees each
// event as it happens; lines below `level` are dropped. Safe to use from
// several threads.
Log service_log(const std::string& service, LogLevel level);

// The help text of --log-level.
std::string log_level_help();
// The level --log-level names (it overrides the config's logging.level);
// nullopt without the flag. UsageError naming the flag and the allowed
// values for anything else.
std::optional<LogLevel> log_level_flag(const ParsedArgs& args);

// metrics.listen: serves `registry` (and /healthz, /readyz: not ready until
// the command says so) and logs `metrics on http://HOST:PORT`; null when
// metrics are off. Throws std::runtime_error naming metrics.listen when it
// cannot bind.
std::unique_ptr<metrics::HttpEndpoint> serve_metrics(const MetricsConfig& config, const metrics::Registry& registry,
                                                     const Log& log);

// cleave client's series of the rounds it trained in and reported.
metrics::Counter& site_rounds_trained_counter(metrics::Registry& registry);

// The process's heap as malloc sees it (mallinfo2), for a long-lived service
// to log every so many rounds: bytes in use against bytes held, so a leak
// (in use grows) and fragmentation (only held grows) tell apart.
std::string heap_report();

}  // namespace cleave::cli
