// The one log type of the services and of the roles they run: a sink and the
// lowest level it passes. Copies share the sink, so every component keeps its
// own Log by value; prefixed() names a role in a log several roles share (the
// simulator's fleet.log), with_level() changes what passes.
//
//   Log log = Log::to_stream(std::cout, "aggregator", LogLevel::warning);
//   log.info("round 3 closed: ...");      // dropped: below warning
//   log.warning("extending the round");   // "2025-01-02T03:04:05Z WARNING aggregator: extending the round"
//
// Levels: debug (per-step and per-message detail), info (what a service does:
// registrations, rounds), warning (something went wrong and the service goes
// on: a retry, a refused request, a dropped session), error (something failed:
// a round, a request given up, the run).
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cleave {

enum class LogLevel { debug, info, warning, error };

// "debug", "info", "warning", "error": the names --log-level and
// logging.level take.
const std::vector<std::pair<std::string, LogLevel>>& log_level_names();
const std::string& log_level_name(LogLevel level);
// The level called `name` (one of log_level_names()); nullopt otherwise.
std::optional<LogLevel> parse_log_level(const std::string& name);
// "debug, info, warning, error", for the error that names the allowed values.
std::string log_level_choices();
// "DEBUG", "INFO", "WARNING", "ERROR": the level as a log line shows it.
const char* log_level_tag(LogLevel level);

class Log {
 public:
  // Receives each line that passes, with its level.
  using Sink = std::function<void(LogLevel level, const std::string& line)>;

  // stderr, info and above: "<UTC time> <LEVEL> <line>".
  Log();
  // `sink` gets the lines at `min_level` and above. Any callable taking
  // (LogLevel, const std::string&), or only the line (a test collecting
  // lines), converts; an empty std::function makes a silent log.
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Log> &&
                                                    (std::is_invocable_v<F&, LogLevel, const std::string&> ||
                                                     std::is_invocable_v<F&, const std::string&>)>>
  Log(F&& sink, LogLevel min_level = LogLevel::info) : min_level_(min_level) {
    // Only a function pointer or a std::function (explicitly testable) can
    // be empty; a function or a lambda never is.
    using Stored = std::decay_t<F>;
    if constexpr (std::is_pointer_v<std::remove_reference_t<F>>) {
      if (sink == nullptr) return;
    } else if constexpr (std::is_constructible_v<bool, const Stored&> && !std::is_convertible_v<const Stored&, bool>) {
      if (!static_cast<bool>(sink)) return;
    }
    if constexpr (std::is_invocable_v<F&, LogLevel, const std::string&>) {
      sink_ = std::make_shared<const Sink>(std::forward<F>(sink));
    } else {
      sink_ = std::make_shared<const Sink>(
          [line_sink = std::forward<F>(sink)](LogLevel, const std::string& line) mutable { line_sink(line); });
    }
  }

  // Passes nothing.
  static Log silent();
  // "<UTC time> <LEVEL> <source>: <line>" (no "<source>: " when empty) on
  // `out`, flushed, each line written whole even when several threads log.
  // `out` must outlive the log.
  static Log to_stream(std::ostream& out, std::string source, LogLevel min_level = LogLevel::info);
  static Log to_stderr(std::string source, LogLevel min_level = LogLevel::info);

  void operator()(LogLevel level, const std::string& line) const {
    if (passes(level)) (*sink_)(level, line);
  }
  // A line at info: what a service does.
  void operator()(const std::string& line) const { info(line); }
  void debug(const std::string& line) const { (*this)(LogLevel::debug, line); }
  void info(const std::string& line) const { (*this)(LogLevel::info, line); }
  void warning(const std::string& line) const { (*this)(LogLevel::warning, line); }
  void error(const std::string& line) const { (*this)(LogLevel::error, line); }

  // Whether a line at `level` would be written: look before building an
  // expensive debug line.
  bool passes(LogLevel level) const { return sink_ && level >= min_level_; }
  LogLevel min_level() const { return min_level_; }

  // The same sink, passing `min_level` and above.
  Log with_level(LogLevel min_level) const;
  // The same sink and level, every line starting with `prefix` ("site: ").
  Log prefixed(const std::string& prefix) const;

 private:
  std::shared_ptr<const Sink> sink_;   // null: silent
  LogLevel min_level_ = LogLevel::info;
};

}  // namespace cleave
