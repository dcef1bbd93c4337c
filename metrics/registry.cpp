#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>

namespace cleave::metrics {
namespace {

void atomic_add(std::atomic<double>& target, double by) {
  double current = target.load();
  while (!target.compare_exchange_weak(current, current + by)) {
  }
}

bool valid_name(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void check_labels(const std::string& name, const Labels& labels, Type type) {
  std::set<std::string> seen;
  for (const auto& [label, value] : labels) {
    if (!valid_name(label, false) || label.rfind("__", 0) == 0) {
      throw std::invalid_argument("metric " + name + ": invalid label name '" + label + "'");
    }
    if (type == Type::histogram && label == "le") {
      throw std::invalid_argument("metric " + name + ": label 'le' is reserved for histogram buckets");
    }
    if (!seen.insert(label).second) throw std::invalid_argument("metric " + name + ": label '" + label + "' twice");
  }
}

const char* type_name(Type type) {
  switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

// Prometheus' float text: shortest round-trip form, +Inf, -Inf, NaN.
std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

// HELP text escapes backslash and newline; label values also the double quote.
std::string escape(const std::string& text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string label_text(const Labels& labels, const std::string& le = "") {
  if (labels.empty() && le.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [label, value] : labels) {
    if (!first) out += ",";
    first = false;
    out += label + "=\"" + escape(value, true) + "\"";
  }
  if (!le.empty()) out += std::string(first ? "" : ",") + "le=\"" + le + "\"";
  return out + "}";
}

std::string header(const std::string& name, const std::string& help, Type type) {
  return "# HELP " + name + " " + escape(help, false) + "\n# TYPE " + name + " " + type_name(type) + "\n";
}

}  // namespace

void Counter::inc(double by) {
  if (!(by >= 0)) throw std::invalid_argument("a counter only goes up, got " + format_value(by));
  atomic_add(value_, by);
}

void Gauge::add(double by) { atomic_add(value_, by); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  if (!std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()) ||
      std::adjacent_find(upper_bounds_.begin(), upper_bounds_.end()) != upper_bounds_.end()) {
    throw std::invalid_argument("histogram buckets must be strictly increasing");
  }
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double value) {
  // A bucket counts values <= its upper bound.
  const size_t i = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  buckets_[i].fetch_add(1);
  atomic_add(sum_, value);
  count_.fetch_add(1);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += buckets_[i].load();
    s.cumulative.push_back(running);
  }
  // The count is the +Inf bucket's, so a scrape racing an observe stays consistent.
  s.count = running;
  s.sum = sum_.load();
  return s;
}

std::vector<double> duration_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

Collection::Collection(Collection&& other) noexcept : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

Collection& Collection::operator=(Collection&& other) noexcept {
  if (this != &other) {
    release();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

Collection::~Collection() { release(); }

void Collection::release() {
  if (registry_) registry_->remove_collector(id_);
  registry_ = nullptr;
}

struct Registry::Family {
  std::string help;
  Type type;
  std::vector<double> upper_bounds;   // histograms
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
  bool collected = false;             // a collector's family: no series of its own
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(const std::string& name, const std::string& help, Type type) {
  if (!valid_name(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto created = std::make_unique<Family>();
    created->help = help;
    created->type = type;
    it = families_.emplace(name, std::move(created)).first;
  } else if (it->second->type != type || it->second->collected) {
    throw std::invalid_argument("metric " + name + " is already registered as a " + type_name(it->second->type) +
                                (it->second->collected ? " collector" : ""));
  }
  return *it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  check_labels(name, labels, Type::counter);
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<Counter>& series = family(name, help, Type::counter).counters[labels];
  if (!series) series = std::make_unique<Counter>();
  return *series;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  check_labels(name, labels, Type::gauge);
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<Gauge>& series = family(name, help, Type::gauge).gauges[labels];
  if (!series) series = std::make_unique<Gauge>();
  return *series;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& upper_bounds, const Labels& labels) {
  check_labels(name, labels, Type::histogram);
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, help, Type::histogram);
  if (f.histograms.empty() && f.upper_bounds.empty()) f.upper_bounds = upper_bounds;
  if (f.upper_bounds != upper_bounds) throw std::invalid_argument("histogram " + name + ": other buckets than before");
  std::unique_ptr<Histogram>& series = f.histograms[labels];
  if (!series) series = std::make_unique<Histogram>(upper_bounds);
  return *series;
}

Collection Registry::collect(const std::string& name, const std::string& help, Type type,
                             std::function<std::vector<Sample>()> read) {
  if (type == Type::histogram) throw std::invalid_argument("metric " + name + ": collectors report counters or gauges");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (families_.count(name)) throw std::invalid_argument("metric " + name + " is already registered");
    Family& f = family(name, help, type);
    f.collected = true;
  }
  std::unique_lock<std::shared_mutex> lock(collectors_mutex_);
  const uint64_t id = next_collector_++;
  collectors_[id] = Collector{name, help, type, std::move(read)};
  return Collection(this, id);
}

void Registry::remove_collector(uint64_t id) {
  std::string name;
  {
    std::unique_lock<std::shared_mutex> lock(collectors_mutex_);
    auto it = collectors_.find(id);
    if (it == collectors_.end()) return;
    name = it->second.name;
    collectors_.erase(it);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  families_.erase(name);
}

std::string Registry::render() const {
  std::map<std::string, std::string> text;   // family name -> its lines
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, f] : families_) {
      if (f->collected) continue;
      std::string out = header(name, f->help, f->type);
      for (const auto& [labels, c] : f->counters) out += name + label_text(labels) + " " + format_value(c->value()) + "\n";
      for (const auto& [labels, g] : f->gauges) out += name + label_text(labels) + " " + format_value(g->value()) + "\n";
      for (const auto& [labels, h] : f->histograms) {
        const Histogram::Snapshot s = h->snapshot();
        for (size_t i = 0; i <= s.upper_bounds.size(); ++i) {
          const std::string le = i < s.upper_bounds.size() ? format_value(s.upper_bounds[i]) : "+Inf";
          out += name + "_bucket" + label_text(labels, le) + " " + std::to_string(s.cumulative[i]) + "\n";
        }
        out += name + "_sum" + label_text(labels) + " " + format_value(s.sum) + "\n";
        out += name + "_count" + label_text(labels) + " " + std::to_string(s.count) + "\n";
      }
      text[name] = std::move(out);
    }
  }
  {
    std::shared_lock<std::shared_mutex> lock(collectors_mutex_);
    for (const auto& [id, c] : collectors_) {
      std::string out = header(c.name, c.help, c.type);
      for (const Sample& sample : c.read()) {
        check_labels(c.name, sample.labels, c.type);
        out += c.name + label_text(sample.labels) + " " + format_value(sample.value) + "\n";
      }
      text[c.name] = std::move(out);
    }
  }
  std::string all;
  for (const auto& [name, lines] : text) all += lines;
  return all;
}

}  // namespace cleave::metrics
