#include "util/log.h"

#include <ctime>
#include <iostream>
#include <mutex>

namespace cleave {
namespace {

// One lock for every stream sink: lines from any thread, to any stream,
// come out whole.
std::mutex& stream_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

const char* log_level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "DEBUG";
    case LogLevel::info: return "INFO";
    case LogLevel::warning: return "WARNING";
    case LogLevel::error: return "ERROR";
  }
  return "?";
}

const std::vector<std::pair<std::string, LogLevel>>& log_level_names() {
  static const std::vector<std::pair<std::string, LogLevel>> names = {
      {"debug", LogLevel::debug}, {"info", LogLevel::info}, {"warning", LogLevel::warning}, {"error", LogLevel::error}};
  return names;
}

const std::string& log_level_name(LogLevel level) {
  for (const auto& [name, value] : log_level_names()) {
    if (value == level) return name;
  }
  static const std::string unknown = "unknown";
  return unknown;
}

std::optional<LogLevel> parse_log_level(const std::string& name) {
  for (const auto& [n, value] : log_level_names()) {
    if (n == name) return value;
  }
  return std::nullopt;
}

std::string log_level_choices() {
  std::string text;
  for (const auto& [name, value] : log_level_names()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

Log::Log() : Log(to_stderr("")) {}

Log Log::silent() { return Log(Sink()); }

Log Log::to_stream(std::ostream& out, std::string source, LogLevel min_level) {
  const std::string prefix = source.empty() ? "" : source + ": ";
  return Log(
      [&out, prefix](LogLevel level, const std::string& line) {
        const std::time_t now = std::time(nullptr);
        std::tm utc{};
        gmtime_r(&now, &utc);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
        const std::string text =
            std::string(stamp) + " " + log_level_tag(level) + " " + prefix + line + "\n";
        std::lock_guard<std::mutex> lock(stream_mutex());
        out << text << std::flush;
      },
      min_level);
}

Log Log::to_stderr(std::string source, LogLevel min_level) { return to_stream(std::cerr, std::move(source), min_level); }

Log Log::with_level(LogLevel min_level) const {
  Log log = *this;
  log.min_level_ = min_level;
  return log;
}

Log Log::prefixed(const std::string& prefix) const {
  if (!sink_) return *this;
  Log log = *this;
  log.sink_ = std::make_shared<const Sink>(
      [inner = sink_, prefix](LogLevel level, const std::string& line) { (*inner)(level, prefix + line); });
  return log;
}

}  // namespace cleave
