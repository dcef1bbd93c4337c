#include "cli/metrics.h"

#include <stdexcept>


namespace cleave::cli {

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(path, std::ios::trunc) {
  if (!out_) throw std::runtime_error(path + ": cannot create the metrics file");
}

void MetricsLog::write(const json::Value& event) {
  out_ << event.dump() << "\n";
  out_.flush();
  if (!out_) throw std::runtime_error(path_ + ": cannot write the metrics file (disk full?)");
}

MetricsTrainStep::MetricsTrainStep(TrainStep& inner, TrainOptions options, MetricsLog& log)
    : inner_(inner), options_(options), log_(log), start_(Clock::now()), window_start_(start_) {}

StepResult MetricsTrainStep::forward_backward(const data::Batch& batch,
                                              const StepContext& context) {
  if (steps_ == 0) start_ = window_start_ = Clock::now();  // not the setup before step 1
  const StepResult result = inner_.forward_backward(batch, context);
  ++steps_;
  window_loss_ += result.loss;
  ++window_steps_;
  window_tokens_ += batch.batch_size * batch.seq_len;
  const bool last = steps_ == options_.steps;
  if (options_.log_every > 0 && (steps_ % options_.log_every == 0 || last)) {
    const auto now = Clock::now();
    const double window_s = std::chrono::duration<double>(now - window_start_).count();
    json::Value event = json::Value::object();
    event.set("event", "train");
    event.set("step", steps_);
    event.set("loss", window_loss_ / window_steps_);
    event.set("lr", context.lr);
    event.set("tokens_per_s", window_tokens_ / std::max(window_s, 1e-9));
    event.set("elapsed_s", std::chrono::duration<double>(now - start_).count());
    log_.write(event);
    window_loss_ = 0;
    window_steps_ = 0;
    window_tokens_ = 0;
    window_start_ = now;
  }
  return result;
}

}  // namespace cleave::cli
