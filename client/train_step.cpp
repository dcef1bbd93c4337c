#include "client/train_step.h"

#include <ATen/ATen.h>

#include "lora/adapter_set.h"
#include "model/llama_model.h"
#include "model/loss.h"

namespace cleave {

BatchTensors to_tensors(const data::Batch& batch) {
  const std::vector<int64_t> shape = {batch.batch_size, batch.seq_len};
  auto ints = [&](const std::vector<int32_t>& v) {
    return at::from_blob(const_cast<int32_t*>(v.data()), shape, at::kInt).to(at::kLong);
  };
  BatchTensors t;
  t.inputs = ints(batch.inputs);
  t.targets = ints(batch.targets);
  t.weights = at::from_blob(const_cast<float*>(batch.weights.data()), shape, at::kFloat).clone();
  return t;
}

LocalTrainStep::LocalTrainStep(std::shared_ptr<const LlamaModel> model, lora::AdapterSet& adapters,
                               bool recompute_activations)
    : model_(std::move(model)), adapters_(adapters), recompute_activations_(recompute_activations) {}

StepResult LocalTrainStep::forward_backward(const data::Batch& batch, const StepContext&) {
  const BatchTensors t = to_tensors(batch);
  const BlockActivations activations =
      recompute_activations_ ? BlockActivations::recomputed : BlockActivations::saved;
  at::Tensor h = model_->run_blocks(model_->embed(t.inputs), 0, model_->n_layers(), &adapters_,
                                    /*pos0=*/0, activations);  // [B, T, dim]
  LossResult loss = model_->head_loss(h, t.targets, t.weights, &adapters_);
  loss.loss.backward();
  return {loss.loss.item<double>(), loss.n_scored};
}

std::vector<at::Tensor> LocalTrainStep::parameters() const { return adapters_.parameters(); }

}  // namespace cleave
