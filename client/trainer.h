// The training loop: AdamW with warmup + cosine schedule, gradient clipping,
// periodic evaluation and checkpoints, a progress line. Drives any TrainStep
// (local or split).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <iosfwd>
#include <optional>
#include <vector>

#include "client/adamw.h"
#include "client/batching.h"
#include "client/train_step.h"

namespace cleave {

struct TrainOptions {
  int64_t steps = 200;
  double lr = 2e-3;
  double min_lr_ratio = 0.1;       // cosine decays to lr * min_lr_ratio
  int64_t warmup_steps = 10;
  double weight_decay = 0.0;
  double grad_clip = 1.0;          // max global L2 norm; 0 disables
  double proximal_mu = 0.0;        // FedProx: mu/2 ||w - w_start||^2
  int64_t eval_every = 0;          // 0: only at the end
  int64_t checkpoint_every = 0;    // 0: only at the end
  int64_t log_every = 10;
  uint32_t round = 0;              // passed to the step (federated round)
  bool recompute = false;          // recompute block activations in backward (LocalTrainStep)
  int64_t micro_batch = 0;         // rows per forward/backward, gradients accumulated; 0: whole batch

  void validate() const;           // throws std::invalid_argument naming the field
};

struct TrainReport {
  std::vector<double> losses;      // per step (fewer than options.steps when stop_when ended the run)
  int64_t tokens = 0;              // scored target tokens seen
  double seconds = 0;
  double mean_loss() const;
};

class Trainer {
 public:
  using EvalFn = std::function<double()>;            // returns held-out perplexity
  using CheckpointFn = std::function<void(int64_t step)>;
  using StopFn = std::function<bool()>;              // true: end the run here

  Trainer(TrainStep& step, TrainOptions options, std::ostream* log = nullptr);
  void on_eval(EvalFn fn) { eval_ = std::move(fn); }
  void on_checkpoint(CheckpointFn fn) { checkpoint_ = std::move(fn); }
  // Asked after each periodic evaluation (on_eval); true ends the run there
  // (early stopping), with the final checkpoint at that step.
  void stop_when(StopFn fn) { stop_ = std::move(fn); }
  AdamW& optimizer() { return optimizer_; }

  // Runs options.steps steps on batches from `stream`.
  TrainReport run(data::BatchStream& stream);

 private:
  TrainStep& step_;
  TrainOptions options_;
  std::ostream* log_;
  AdamW optimizer_;
  std::vector<at::Tensor> start_;  // parameter values at the start (FedProx anchor)
  EvalFn eval_;
  CheckpointFn checkpoint_;
  StopFn stop_;
};

std::string format_duration(double seconds);   // "1h02m", "3m05s", "12s"

}  // namespace cleave
