#include "cli/service_runtime.h"

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>

namespace cleave::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void raise_stop_flag(int) { g_stop.store(true); }

}  // namespace

std::unique_ptr<metrics::HttpEndpoint> serve_metrics(const MetricsConfig& config, const metrics::Registry& registry,
                                                     const std::function<void(const std::string&)>& log) {
  if (!config.enabled()) return nullptr;
  auto endpoint = std::make_unique<metrics::HttpEndpoint>(registry, config.listen, "metrics.listen");
  log("metrics on " + endpoint->url() + " (/metrics, /healthz, /readyz)");
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

void log_event(const std::string& service, const std::string& line) {
  static std::mutex mutex;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::lock_guard<std::mutex> lock(mutex);
  std::cout << stamp << " " << service << ": " << line << std::endl;
}

std::string heap_report() {
  const struct mallinfo2 heap = mallinfo2();
  return "heap in use " + std::to_string((heap.uordblks + heap.hblkhd) >> 10) + " KiB, held " +
         std::to_string((heap.arena + heap.hblkhd) >> 10) + " KiB, free in the heap " +
         std::to_string(heap.fordblks >> 10) + " KiB";
}

}  // namespace cleave::cli
