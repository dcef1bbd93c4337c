// <run dir>/metrics.jsonl: one JSON object per event ("train" every
// log_every steps, "eval", "checkpoint", "summary"), written as it happens.
#pragma once

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "client/train_step.h"
#include "client/trainer.h"
#include "util/json.h"

namespace cleave::cli {

class MetricsLog {
 public:
  // Creates or truncates the file; throws std::runtime_error if it cannot.
  explicit MetricsLog(const std::string& path);
  // Appends `event` (an object) as one line and flushes it.
  void write(const json::Value& event);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// Wraps the step the trainer drives, so metrics are recorded without the
// trainer knowing: counts steps and writes a "train" event every log_every
// steps with the window's mean loss, the step's learning rate and tokens/s.
class MetricsTrainStep : public TrainStep {
 public:
  MetricsTrainStep(TrainStep& inner, TrainOptions options, MetricsLog& log);
  StepResult forward_backward(const data::Batch& batch, const StepContext& context) override;
  std::vector<at::Tensor> parameters() const override { return inner_.parameters(); }
  int64_t steps_done() const { return steps_; }

 private:
  using Clock = std::chrono::steady_clock;
  TrainStep& inner_;
  TrainOptions options_;
  MetricsLog& log_;
  int64_t steps_ = 0;
  double window_loss_ = 0;
  int64_t window_steps_ = 0, window_tokens_ = 0;
  Clock::time_point start_, window_start_;
};

}  // namespace cleave::cli
