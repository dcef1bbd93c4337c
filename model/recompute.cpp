#include "model/recompute.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <mutex>

namespace cleave {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward pass needs to run the piece again.
struct Replay : torch::CustomClassHolder {
  PieceFn piece;
  std::vector<at::Tensor> parameters;
  at::Tensor rng_state;  // the default CPU generator before the forward run
};

at::Tensor cpu_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Inputs: the piece's input, then its parameters (so the engine routes their
// gradients to AccumulateGrad like any other use of a parameter).
struct RecomputedPiece : public torch::autograd::Function<RecomputedPiece> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, at::TensorList parameters,
                            int64_t replay_address) {
    auto replay = c10::make_intrusive<Replay>(*reinterpret_cast<const Replay*>(replay_address));
    replay->rng_state = cpu_rng_state();
    ctx->saved_data["replay"] = c10::IValue::make_capsule(replay);
    ctx->saved_data["input"] = input.detach();
    ctx->saved_data["input_requires_grad"] = input.requires_grad();
    (void)parameters;
    return replay->piece(input);  // autograd is off here: nothing is saved
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto replay = c10::static_intrusive_pointer_cast<Replay>(ctx->saved_data["replay"].toCapsule());
    const bool input_requires_grad = ctx->saved_data["input_requires_grad"].toBool();
    at::Tensor input = ctx->saved_data["input"].toTensor().detach().requires_grad_(input_requires_grad);

    // Replay the forward's random draws, then put the generator back where
    // the backward pass found it.
    const at::Tensor rng_now = cpu_rng_state();
    set_cpu_rng_state(replay->rng_state);
    at::Tensor output;
    {
      at::AutoGradMode grad_on(true);
      output = replay->piece(input);
    }
    set_cpu_rng_state(rng_now);

    // Differentiate with respect to what needs a gradient; the rest get none.
    variable_list wrt;
    if (input_requires_grad) wrt.push_back(input);
    for (const at::Tensor& p : replay->parameters) {
      if (p.requires_grad()) wrt.push_back(p);
    }
    variable_list grads(wrt.size());
    if (!wrt.empty() && output.requires_grad()) {
      grads = torch::autograd::grad({output}, wrt, {grad_outputs[0]}, /*retain_graph=*/false,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    }
    variable_list result;
    size_t next = 0;
    result.push_back(input_requires_grad ? grads[next++] : at::Tensor());
    for (const at::Tensor& p : replay->parameters) {
      result.push_back(p.requires_grad() ? grads[next++] : at::Tensor());
    }
    result.push_back(at::Tensor());  // replay_address
    return result;
  }
};

}  // namespace

at::Tensor run_recomputed(const PieceFn& piece, const at::Tensor& input,
                          const std::vector<at::Tensor>& parameters) {
  bool needs_grad = input.requires_grad();
  for (const at::Tensor& p : parameters) needs_grad = needs_grad || p.requires_grad();
  if (!at::GradMode::is_enabled() || !needs_grad) return piece(input);
  Replay replay;
  replay.piece = piece;
  replay.parameters = parameters;
  return RecomputedPiece::apply(input, at::TensorList(parameters),
                                reinterpret_cast<int64_t>(&replay));
}

}  // namespace cleave
