#include "simulate/round_metrics.h"

#include <cmath>

#include <cstdio>
#include <stdexcept>

#include "client/trainer.h"
#include "util/json.h"

namespace cleave::simulate {

uint64_t ChannelBytes::total() const {
  return activations_up + activations_down + gradients_up + gradients_down + adapters_up + adapters_down + control;
}

ChannelBytes ChannelBytes::operator-(const ChannelBytes& e) const {
  return {activations_up - e.activations_up, activations_down - e.activations_down, gradients_up - e.gradients_up,
          gradients_down - e.gradients_down, adapters_up - e.adapters_up,           adapters_down - e.adapters_down,
          control - e.control,               labels_up - e.labels_up};
}

ChannelBytes ChannelBytes::operator+(const ChannelBytes& o) const {
  return {activations_up + o.activations_up, activations_down + o.activations_down, gradients_up + o.gradients_up,
          gradients_down + o.gradients_down, adapters_up + o.adapters_up,           adapters_down + o.adapters_down,
          control + o.control,               labels_up + o.labels_up};
}

ChannelBytes channel_bytes(const wire::ByteCounter* aggregator, const SplitCounts& split) {
  ChannelBytes bytes;
  if (aggregator) {
    for (const wire::ByteCounter::Row& row : aggregator->rows()) {
      const uint64_t all = row.sent_bytes + row.received_bytes;
      if (row.message_type == "round_assignment") {
        bytes.adapters_down += row.sent_bytes;
        bytes.control += row.received_bytes;
      } else if (row.message_type == "update" || row.message_type == "secagg_masked_input") {
        bytes.adapters_up += row.received_bytes;
        bytes.control += row.sent_bytes;
      } else {
        bytes.control += all;
      }
    }
  }
  if (split.frames) {
    // Vanilla split: forward carries the smashed activations (and the labels)
    // up, its reply the gradient at the cut down. U-shaped: forward_reply
    // carries activations at the top cut down, backward their gradient up,
    // backward_reply the gradient at the bottom cut down.
    bytes.labels_up = split.label_bytes;
    for (const wire::ByteCounter::Row& row : split.frames->rows()) {
      if (row.message_type == "forward") {
        bytes.activations_up += row.received_bytes;
        bytes.control += row.sent_bytes;
      } else if (row.message_type == "forward_reply") {
        (split.u_shaped ? bytes.activations_down : bytes.gradients_down) += row.sent_bytes;
      } else if (row.message_type == "backward") {
        bytes.gradients_up += row.received_bytes;
      } else if (row.message_type == "backward_reply") {
        bytes.gradients_down += row.sent_bytes;
      } else {
        bytes.control += row.sent_bytes + row.received_bytes;
      }
    }
  }
  return bytes;
}

double RoundMetrics::client_perplexity_mean() const {
  if (client_perplexity.empty()) return 0;
  double sum = 0;
  for (const auto& [id, ppl] : client_perplexity) sum += ppl;
  return sum / static_cast<double>(client_perplexity.size());
}

const std::vector<std::string>& metrics_columns() {
  static const std::vector<std::string> kColumns = {
      "round",          "sampled",          "reported",         "train_loss",         "eval_perplexity",
      "client_perplexity_mean",             "activations_up_bytes",                   "activations_down_bytes",
      "gradients_up_bytes",                 "gradients_down_bytes",                   "adapters_up_bytes",
      "adapters_down_bytes",                "control_bytes",    "label_bytes",        "round_bytes",
      "cumulative_bytes",
      "client_seconds", "aggregation_seconds", "eval_seconds",  "round_seconds",      "elapsed_seconds",
      "dp_epsilon",     "lora_truncation_error", "validation_perplexity", "train_tokens", "cumulative_train_tokens"};
  static const std::vector<std::string> kWithCost = [] {
    std::vector<std::string> columns = kColumns;
    columns.insert(columns.end(), cost_columns().begin(), cost_columns().end());
    return columns;
  }();
  return kWithCost;
}

MetricsFiles::MetricsFiles(const std::string& dir) : dir_(dir) {
  csv_.open(dir + "/metrics.csv", std::ios::trunc);
  jsonl_.open(dir + "/metrics.jsonl", std::ios::trunc);
  if (!csv_ || !jsonl_) throw std::runtime_error(dir + ": cannot write metrics.csv/metrics.jsonl (is it writable?)");
  const std::vector<std::string>& columns = metrics_columns();
  for (size_t i = 0; i < columns.size(); ++i) csv_ << (i ? "," : "") << columns[i];
  csv_ << "\n";
  csv_.flush();
}

void MetricsFiles::write(const RoundMetrics& m) {
  const ChannelBytes& b = m.bytes;
  char line[640];
  std::snprintf(line, sizeof line,
                "%lld,%lld,%lld,%.6f,%.6f,%.6f,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%.4f,%.4f,%.4f,%.4f,"
                "%.4f,",
                static_cast<long long>(m.round), static_cast<long long>(m.sampled),
                static_cast<long long>(m.reported), m.train_loss, m.eval_perplexity, m.client_perplexity_mean(),
                static_cast<unsigned long long>(b.activations_up), static_cast<unsigned long long>(b.activations_down),
                static_cast<unsigned long long>(b.gradients_up), static_cast<unsigned long long>(b.gradients_down),
                static_cast<unsigned long long>(b.adapters_up), static_cast<unsigned long long>(b.adapters_down),
                static_cast<unsigned long long>(b.control), static_cast<unsigned long long>(b.labels_up),
                static_cast<unsigned long long>(b.total()),
                static_cast<unsigned long long>(m.cumulative.total()), m.client_seconds, m.aggregation_seconds,
                m.eval_seconds, m.round_seconds, m.elapsed_seconds);
  csv_ << line;
  if (m.dp_epsilon) {   // empty without DP
    std::snprintf(line, sizeof line, "%.6f", *m.dp_epsilon);
    csv_ << line;
  }
  csv_ << ",";
  if (m.lora_truncation_error) {   // empty unless lora.aggregation is product
    std::snprintf(line, sizeof line, "%.6g", *m.lora_truncation_error);
    csv_ << line;
  }
  csv_ << ",";
  if (m.validation_perplexity > 0) {   // empty without a validation set, or when not evaluated
    std::snprintf(line, sizeof line, "%.6f", m.validation_perplexity);
    csv_ << line;
  }
  csv_ << "," << m.train_tokens << "," << m.cumulative_train_tokens << cost_cells(m.cost) << "\n";
  csv_.flush();

  json::Value e = json::Value::object();
  e.set("round", m.round);
  e.set("sampled", m.sampled);
  e.set("reported", m.reported);
  e.set("train_loss", m.train_loss);
  e.set("eval_perplexity", m.eval_perplexity);
  if (m.validation_perplexity > 0) e.set("validation_perplexity", m.validation_perplexity);
  e.set("train_tokens", m.train_tokens);
  e.set("cumulative_train_tokens", m.cumulative_train_tokens);
  json::Value clients = json::Value::object();
  for (const auto& [id, ppl] : m.client_perplexity) clients.set(id, ppl);
  e.set("client_perplexity", std::move(clients));
  json::Value bytes = json::Value::object();
  bytes.set("activations_up", b.activations_up);
  bytes.set("activations_down", b.activations_down);
  bytes.set("gradients_up", b.gradients_up);
  bytes.set("gradients_down", b.gradients_down);
  bytes.set("adapters_up", b.adapters_up);
  bytes.set("adapters_down", b.adapters_down);
  bytes.set("control", b.control);
  bytes.set("labels_up", b.labels_up);
  bytes.set("round_total", b.total());
  bytes.set("cumulative_total", m.cumulative.total());
  e.set("bytes", std::move(bytes));
  json::Value seconds = json::Value::object();
  seconds.set("client_compute", m.client_seconds);
  seconds.set("aggregation", m.aggregation_seconds);
  seconds.set("evaluation", m.eval_seconds);
  seconds.set("round", m.round_seconds);
  seconds.set("elapsed", m.elapsed_seconds);
  e.set("seconds", std::move(seconds));
  if (m.dp_epsilon) {
    if (std::isfinite(*m.dp_epsilon)) {
      e.set("dp_epsilon", *m.dp_epsilon);
    } else {
      e.set("dp_epsilon", "inf");   // noise too small to bound anything
    }
  }
  if (m.lora_truncation_error) e.set("lora_truncation_error", *m.lora_truncation_error);
  if (m.cost) e.set("cost", cost_json(*m.cost));
  jsonl_ << e.dump() << "\n";
  jsonl_.flush();
  if (!csv_ || !jsonl_) throw std::runtime_error(dir_ + ": writing the metrics failed (disk full?)");
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 4) {
    bytes /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return buf;
}

std::string progress_line(const RoundMetrics& m) {
  const double per_round = m.elapsed_seconds / static_cast<double>(m.round);
  const double eta = per_round * static_cast<double>(m.rounds - m.round);
  char buf[256];
  std::string ppl = m.eval_perplexity > 0 ? std::to_string(m.eval_perplexity) : std::string("-");
  if (m.eval_perplexity > 0) {
    char p[32];
    std::snprintf(p, sizeof p, "%.3f", m.eval_perplexity);
    ppl = p;
  }
  std::snprintf(buf, sizeof buf, "round %lld/%lld  loss %.4f  ppl %s  bytes %s  eta %s",
                static_cast<long long>(m.round), static_cast<long long>(m.rounds), m.train_loss, ppl.c_str(),
                format_bytes(static_cast<double>(m.cumulative.total())).c_str(), format_duration(eta).c_str());
  return buf;
}

}  // namespace cleave::simulate
