// Prometheus metrics: counters, gauges and histograms with labels, recorded
// by the services where things happen and rendered in the text exposition
// format 0.0.4 for the /metrics endpoint (metrics/http_endpoint.h).
//
// Thread-safe: recording is lock-free (atomics) once a series exists; a
// series is created (or found) under the registry's mutex. Values another
// part of the process already keeps (a round number, a byte counter) are
// read when scraped through collect(); collectors are called without the
// registry's mutex held, so a collector may take its service's lock while
// that service records into the registry under it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

namespace cleave::metrics {

// Label name -> value, e.g. {{"reason", "late"}}. Names must match
// [a-zA-Z_][a-zA-Z0-9_]*; values are any text (escaped when rendered).
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { counter, gauge, histogram };

class Counter {
 public:
  void inc(double by = 1.0);   // by >= 0
  double value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double value) { value_.store(value); }
  void add(double by);
  double value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);   // sorted, without +Inf
  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;   // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;   // upper_bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

// Buckets for durations in seconds: 5 ms to 10 min.
std::vector<double> duration_buckets();

// One sample a collector reports: its labels and value.
struct Sample {
  Labels labels;
  double value = 0;
};

class Registry;

// Keeps a collector registered while it lives; destroying it (before what
// the collector reads is destroyed) waits for a scrape in progress to finish.
class Collection {
 public:
  Collection() = default;
  Collection(Registry* registry, uint64_t id) : registry_(registry), id_(id) {}
  Collection(Collection&& other) noexcept;
  Collection& operator=(Collection&& other) noexcept;
  Collection(const Collection&) = delete;
  Collection& operator=(const Collection&) = delete;
  ~Collection();

 private:
  void release();
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The series `name{labels}`, created on first use. A name is one family
  // with one type and help text: asking for it as another type, or a
  // histogram with other buckets, throws std::invalid_argument. The returned
  // reference lives as long as the registry.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& upper_bounds,
                       const Labels& labels = {});

  // A family (counter or gauge) whose samples `read` returns at every scrape.
  [[nodiscard]] Collection collect(const std::string& name, const std::string& help, Type type,
                                   std::function<std::vector<Sample>()> read);

  // Every family, sorted by name, in the text exposition format 0.0.4.
  std::string render() const;

 private:
  friend class Collection;
  struct Family;
  struct Collector {
    std::string name, help;
    Type type;
    std::function<std::vector<Sample>()> read;
  };
  Family& family(const std::string& name, const std::string& help, Type type);
  void remove_collector(uint64_t id);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>> families_;
  // Held shared while collectors run, exclusively while one is removed.
  mutable std::shared_mutex collectors_mutex_;
  std::map<uint64_t, Collector> collectors_;
  uint64_t next_collector_ = 1;
};

// The content type of render()'s text.
inline constexpr const char* kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace cleave::metrics
