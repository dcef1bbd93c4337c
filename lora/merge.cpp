#include "lora/merge.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "lora/adapter_set.h"
#include "model/llama_model.h"

namespace cleave::lora {
namespace {

void apply(LlamaModel& model, const AdapterSet& adapters, double sign) {
  at::NoGradGuard no_grad;
  for (const auto& [name, pair] : adapters.pairs()) {
    FrozenLinear* linear = model.find_linear(name);
    if (!linear) throw std::invalid_argument("adapter targets " + name + ", which the model lacks");
    // [out, r] x [r, in] -> [out, in]
    at::Tensor& w = linear->weight.float_weight();
    w.add_(at::matmul(pair.b, pair.a).to(w.device(), w.scalar_type()), sign * adapters.scale());
  }
}

}  // namespace

void merge(LlamaModel& model, const AdapterSet& adapters) { apply(model, adapters, 1.0); }
void unmerge(LlamaModel& model, const AdapterSet& adapters) { apply(model, adapters, -1.0); }

}  // namespace cleave::lora
