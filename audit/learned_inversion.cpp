#include "audit/learned_inversion.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/adamw.h"
#include "util/lr_schedule.h"

namespace cleave::audit {
namespace {

// PyTorch's nn.Linear initialisation: U(-1/sqrt(in), 1/sqrt(in)) for both.
void init_linear(at::Tensor& weight, at::Tensor& bias, int64_t out, int64_t in, at::Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = at::empty({out, in}, at::kFloat).uniform_(-bound, bound, gen).requires_grad_(true);
  bias = at::empty({out}, at::kFloat).uniform_(-bound, bound, gen).requires_grad_(true);
}

}  // namespace

void LearnedInversionOptions::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("learned inversion: " + what); };
  if (hidden < 0) fail("hidden must be >= 0 (0: linear), got " + std::to_string(hidden));
  if (steps < 1) fail("steps must be >= 1, got " + std::to_string(steps));
  if (batch_size < 1) fail("batch_size must be >= 1, got " + std::to_string(batch_size));
  if (!(lr > 0) || !std::isfinite(lr)) fail("lr must be > 0, got " + std::to_string(lr));
  if (!(weight_decay >= 0)) fail("weight_decay must be >= 0, got " + std::to_string(weight_decay));
}

LearnedInversion LearnedInversion::train(const at::Tensor& features, const at::Tensor& labels, int64_t vocab,
                                         const LearnedInversionOptions& options,
                                         const TrainingProgress& progress) {
  options.validate();
  if (features.dim() != 2 || labels.dim() != 1 || labels.size(0) != features.size(0) ||
      features.size(0) == 0) {
    throw std::invalid_argument("learned inversion: needs features [N, dim] and labels [N] with N > 0, got " +
                                c10::str(features.sizes()) + " and " + c10::str(labels.sizes()));
  }
  const at::Tensor x_all = features.to(at::kCPU, at::kFloat);  // [N, dim]
  const at::Tensor y_all = labels.to(at::kCPU, at::kLong);     // [N]
  const int64_t n = x_all.size(0), dim = x_all.size(1);

  LearnedInversion model;
  model.mean_ = x_all.mean(0);  // [dim]
  model.inv_std_ = 1.0 / (x_all.std(0, /*unbiased=*/false) + 1e-6);
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  std::vector<at::Tensor> params;
  int64_t width = dim;
  if (options.hidden > 0) {
    init_linear(model.w1_, model.b1_, options.hidden, dim, gen);
    params = {model.w1_, model.b1_};
    width = options.hidden;
  }
  init_linear(model.w2_, model.b2_, vocab, width, gen);
  params.push_back(model.w2_);
  params.push_back(model.b2_);

  AdamWOptions adam;
  adam.weight_decay = options.weight_decay;
  AdamW optimizer(params, adam);
  const int64_t warmup = std::max<int64_t>(1, options.steps / 10);
  const int64_t report_every = std::max<int64_t>(1, options.steps / 5);
  double loss_sum = 0;
  int64_t loss_count = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    const at::Tensor pick = at::randint(n, {std::min(options.batch_size, n)}, gen, at::kLong);  // [b]
    const at::Tensor loss =
        at::cross_entropy_loss(model.logits(x_all.index_select(0, pick)), y_all.index_select(0, pick));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(warmup_cosine_lr(step, options.steps, warmup, options.lr, 0.1));
    loss_sum += loss.item<double>();
    ++loss_count;
    if (progress && ((step + 1) % report_every == 0 || step + 1 == options.steps)) {
      progress(step + 1, options.steps, loss_sum / static_cast<double>(loss_count));
      loss_sum = 0;
      loss_count = 0;
    }
  }
  for (at::Tensor& p : params) p.requires_grad_(false);
  return model;
}

at::Tensor LearnedInversion::hidden_activations(const at::Tensor& features) const {
  const at::Tensor x = (features.to(at::kCPU, at::kFloat) - mean_) * inv_std_;  // [N, dim]
  if (!w1_.defined()) return x;
  return at::gelu(at::linear(x, w1_, b1_));  // [N, hidden]
}

at::Tensor LearnedInversion::logits(const at::Tensor& features) const {
  return at::linear(hidden_activations(features), w2_, b2_);  // [N, vocab]
}

TokenRow LearnedInversion::predict(const at::Tensor& observed) const {
  at::NoGradGuard no_grad;
  const at::Tensor ids = logits(observed).argmax(1).contiguous();  // [T]
  const int64_t* p = ids.data_ptr<int64_t>();
  return TokenRow(p, p + ids.numel());
}

}  // namespace cleave::audit
