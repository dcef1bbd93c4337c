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

// The process's heap as malloc sees it (mallinfo2), for a long-lived service
// to log every so many rounds: bytes in use against bytes held, so a leak
// (in use grows) and fragmentation (only held grows) tell apart.
std::string heap_report();

}  // namespace cleave::cli
