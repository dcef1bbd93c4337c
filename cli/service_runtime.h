// What the long-running commands share: a stop flag raised by SIGINT and
// SIGTERM, and one timestamped log line per event on stdout.
#pragma once

#include <atomic>
#include <string>

namespace cleave::cli {

// Installs SIGINT and SIGTERM handlers (once per process) that raise the
// returned flag; the services' serve() loops check it and return, so the
// command exits cleanly (status 0) after its current request.
const std::atomic<bool>& stop_on_signals();

// Writes "<UTC time> <service>: <line>" to stdout and flushes, so a
// supervisor (or a test reading the pipe) sees each event as it happens.
// Safe to call from several threads.
void log_event(const std::string& service, const std::string& line);

}  // namespace cleave::cli
