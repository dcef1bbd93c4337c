#include "client/adamw.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

namespace cleave {

AdamW::AdamW(std::vector<at::Tensor> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  for (const at::Tensor& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  const double step_size = lr / bias1;
  const double sqrt_bias2 = std::sqrt(bias2);
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (p.scalar_type() == at::kFloat && g.scalar_type() == at::kFloat && p.is_contiguous() &&
        g.is_contiguous() && p.device().is_cpu()) {
      // Adapter tensors are small: one pass in plain loops beats six ATen ops
      // (each a parallel region) per tensor.
      const float decay = static_cast<float>(1.0 - lr * options_.weight_decay);
      const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
      const float inv_sqrt_bias2 = static_cast<float>(1.0 / sqrt_bias2);
      const float eps = static_cast<float>(options_.eps), step = static_cast<float>(step_size);
      float *pp = p.data_ptr<float>(), *mp = m_[i].data_ptr<float>(), *vp = v_[i].data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      for (int64_t j = 0, n = p.numel(); j < n; ++j) {
        mp[j] = b1 * mp[j] + (1.0f - b1) * gp[j];
        vp[j] = b2 * vp[j] + (1.0f - b2) * gp[j] * gp[j];
        pp[j] = pp[j] * decay - step * mp[j] / (std::sqrt(vp[j]) * inv_sqrt_bias2 + eps);
      }
      continue;
    }
    if (options_.weight_decay != 0) p.mul_(1.0 - lr * options_.weight_decay);
    m_[i].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    v_[i].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    at::Tensor denom = (v_[i].sqrt() / sqrt_bias2).add_(options_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (at::Tensor& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    // on the CPU for checkpoints, wherever the parameters live
    out[std::to_string(i) + ".m"] = m_[i].to(at::kCPU, m_[i].scalar_type(), false, /*copy=*/true);
    out[std::to_string(i) + ".v"] = v_[i].to(at::kCPU, v_[i].scalar_type(), false, /*copy=*/true);
  }
  out["step"] = at::tensor({static_cast<double>(step_)}, at::kDouble);
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state) {
  if (state.size() != params_.size() * 2 + 1 || !state.count("step")) {
    throw std::invalid_argument("optimizer state has " + std::to_string(state.size()) +
                                " tensors, expected " + std::to_string(params_.size() * 2 + 1) +
                                ": was it saved for a different adapter configuration?");
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [suffix, dst] : {std::pair{".m", &m_[i]}, std::pair{".v", &v_[i]}}) {
      const at::Tensor& src = state.at(std::to_string(i) + suffix);
      if (!src.sizes().equals(dst->sizes())) {
        throw std::invalid_argument("optimizer state " + std::to_string(i) + suffix +
                                    " has the wrong shape");
      }
      dst->copy_(src);
    }
  }
  step_ = static_cast<int64_t>(state.at("step").item<double>());
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double factor = max_norm / (norm + 1e-6);
    for (const at::Tensor& p : params) {
      if (p.grad().defined()) p.grad().mul_(factor);
    }
  }
  return norm;
}

}  // namespace cleave
