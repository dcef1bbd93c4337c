#include "cli/service_runtime.h"

#include <malloc.h>

#include <csignal>
#include <iostream>

namespace cleave::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void raise_stop_flag(int) { g_stop.store(true); }

}  // namespace

std::unique_ptr<metrics::HttpEndpoint> serve_metrics(const MetricsConfig& config, const metrics::Registry& registry,
                                                     const Log& log) {
  if (!config.enabled()) return nullptr;
  auto endpoint = std::make_unique<metrics::HttpEndpoint>(registry, config.listen, "metrics.listen");
  log.info("metrics on " + endpoint->url() + " (/metrics, /healthz, /readyz)");
  return endpoint;
}

const std::atomic<bool>& stop_on_signals() {
  static const bool installed = [] {
    struct sigaction action = {};
    action.sa_handler = raise_stop_flag;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    return true;
  }();
  (void)installed;
  return g_stop;
}

Log service_log(const std::string& service, LogLevel level) { return Log::to_stream(std::cout, service, level); }

std::string log_level_help() {
  return "the lowest level printed: " + log_level_choices() + "\n(overrides logging.level)";
}

std::optional<LogLevel> log_level_flag(const ParsedArgs& args) {
  const std::optional<std::string> name = args.get("--log-level");
  if (!name) return std::nullopt;
  if (const std::optional<LogLevel> level = parse_log_level(*name)) return level;
  throw UsageError("--log-level must be one of " + log_level_choices() + ", got '" + *name + "'");
}

metrics::Counter& site_rounds_trained_counter(metrics::Registry& registry) {
  return registry.counter("cleave_site_rounds_trained_total", "Rounds this site trained in and reported.");
}

std::string heap_report() {
  const struct mallinfo2 heap = mallinfo2();
  return "heap in use " + std::to_string((heap.uordblks + heap.hblkhd) >> 10) + " KiB, held " +
         std::to_string((heap.arena + heap.hblkhd) >> 10) + " KiB, free in the heap " +
         std::to_string(heap.fordblks >> 10) + " KiB";
}

}  // namespace cleave::cli
