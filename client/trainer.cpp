#include "client/trainer.h"
#include "metrics/cost_meter.h"
#include "util/lr_schedule.h"
#include "util/stopwatch.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <ostream>
#include <stdexcept>

namespace cleave {

void TrainOptions::validate() const {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(what);
  };
  require(steps > 0, "train.steps must be > 0");
  require(lr > 0, "train.lr must be > 0");
  require(min_lr_ratio >= 0 && min_lr_ratio <= 1, "train.min_lr_ratio must be in [0, 1]");
  require(warmup_steps >= 0, "train.warmup_steps must be >= 0");
  require(weight_decay >= 0, "train.weight_decay must be >= 0");
  require(grad_clip >= 0, "train.grad_clip must be >= 0");
  require(proximal_mu >= 0, "train.proximal_mu must be >= 0");
  require(eval_every >= 0, "train.eval_every must be >= 0");
  require(checkpoint_every >= 0, "train.checkpoint_every must be >= 0");
  require(log_every >= 0, "train.log_every must be >= 0");
  require(micro_batch >= 0, "train.micro_batch must be >= 0 (0: the whole batch at once)");
}

double TrainReport::mean_loss() const {
  return losses.empty() ? 0.0
                        : std::accumulate(losses.begin(), losses.end(), 0.0) / losses.size();
}

std::string format_duration(double seconds) {
  char buf[32];
  const long s = std::lround(std::max(0.0, seconds));
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lds", s);
  }
  return buf;
}

Trainer::Trainer(TrainStep& step, TrainOptions options, std::ostream* log)
    : step_(step),
      options_(options),
      log_(log),
      optimizer_(step.parameters(), AdamWOptions{0.9, 0.999, 1e-8, options.weight_decay}) {
  options_.validate();
}

TrainReport Trainer::run(data::BatchStream& stream) {
  using Clock = std::chrono::steady_clock;
  const std::vector<at::Tensor> params = step_.parameters();
  if (options_.proximal_mu > 0) {
    start_.clear();
    for (const at::Tensor& p : params) start_.push_back(p.detach().clone());
  }
  TrainReport report;
  const auto t0 = Clock::now();
  auto window_start = t0;
  int64_t window_tokens = 0;
  for (int64_t step = 0; step < options_.steps; ++step) {
    const data::Batch batch = stream.next();
    const double lr = warmup_cosine_lr(step, options_.steps, options_.warmup_steps, options_.lr,
                                       options_.min_lr_ratio);
    optimizer_.zero_grad();
    const StepResult result =
        step_.forward_backward(batch, StepContext{step, options_.round, lr, options_.grad_clip});
    if (!std::isfinite(result.loss)) {
      throw std::runtime_error("loss became " + std::to_string(result.loss) + " at step " +
                               std::to_string(step + 1) + ": lower train.lr or check the data");
    }
    if (options_.proximal_mu > 0) {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].grad().defined()) {
          params[i].mutable_grad().add_(params[i] - start_[i], options_.proximal_mu);
        }
      }
    }
    {
      metrics::PhaseScope phase(metrics::Phase::optimizer);   // the running role's, if any
      clip_grad_norm(params, options_.grad_clip);
      optimizer_.step(lr);
    }
    report.losses.push_back(result.loss);
    report.tokens += batch.batch_size * batch.seq_len;
    window_tokens += batch.batch_size * batch.seq_len;

    const bool last = step + 1 == options_.steps;
    if (log_ && options_.log_every > 0 && ((step + 1) % options_.log_every == 0 || last)) {
      const auto now = Clock::now();
      const double window_s = std::chrono::duration<double>(now - window_start).count();
      const double elapsed = std::chrono::duration<double>(now - t0).count();
      const double eta = elapsed / (step + 1) * (options_.steps - step - 1);
      char line[200];
      std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  eta %s",
                    static_cast<long long>(step + 1), static_cast<long long>(options_.steps),
                    result.loss, lr, window_tokens / std::max(window_s, 1e-9),
                    format_duration(eta).c_str());
      *log_ << line << std::endl;
      window_start = now;
      window_tokens = 0;
    }
    if (eval_ && options_.eval_every > 0 && (step + 1) % options_.eval_every == 0 && !last) {
      const double ppl = eval_();
      if (log_) *log_ << "eval at step " << step + 1 << ": perplexity " << ppl << std::endl;
      if (stop_ && stop_()) {
        if (log_) *log_ << "stopped at step " << step + 1 << " of " << options_.steps << std::endl;
        break;
      }
    }
    if (checkpoint_ && options_.checkpoint_every > 0 && (step + 1) % options_.checkpoint_every == 0 &&
        !last) {
      checkpoint_(step + 1);
    }
  }
  report.seconds = seconds_since(t0);
  if (checkpoint_) checkpoint_(static_cast<int64_t>(report.losses.size()));
  return report;
}

}  // namespace cleave
