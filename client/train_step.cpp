#include "client/train_step.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

#include "lora/adapter_set.h"
#include "metrics/cost_meter.h"
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
                               bool recompute_activations, int64_t micro_batch)
    : model_(std::move(model)),
      adapters_(adapters),
      recompute_activations_(recompute_activations),
      micro_batch_(micro_batch) {
  if (micro_batch < 0) throw std::invalid_argument("train.micro_batch must be >= 0 (0: the whole batch)");
}

LocalTrainStep::RowsResult LocalTrainStep::run_rows(const BatchTensors& t, int64_t row0, int64_t rows,
                                                    double share) {
  const BlockActivations activations =
      recompute_activations_ ? BlockActivations::recomputed : BlockActivations::saved;
  metrics::PhaseScope phase(metrics::Phase::forward);   // the running role's, if any
  const at::Tensor inputs = t.inputs.narrow(0, row0, rows);  // [rows, T]
  at::Tensor h = model_->run_blocks(model_->embed(inputs), 0, model_->n_layers(), &adapters_,
                                    /*pos0=*/0, activations);  // [rows, T, dim]
  LossResult loss = model_->head_loss(h, t.targets.narrow(0, row0, rows),
                                      t.weights.narrow(0, row0, rows), &adapters_);
  phase.switch_to(metrics::Phase::backward);
  (share == 1.0 ? loss.loss : loss.loss * share).backward();
  return {loss.nll_sum, loss.n_scored};
}

StepResult LocalTrainStep::forward_backward(const data::Batch& batch, const StepContext&) {
  const BatchTensors t = to_tensors(batch);
  const int64_t rows = batch.batch_size;
  // Each micro-batch's mean loss weighs by its scored targets over the
  // batch's, so the gradients sum to those of the batch's mean loss.
  at::Tensor scored_per_row;  // [B]
  int64_t total = 0;
  if (micro_batch_ > 0 && micro_batch_ < rows) {
    scored_per_row = t.weights.gt(0).sum(1);
    total = scored_per_row.sum().item<int64_t>();
  }
  if (total == 0) {  // one pass (also when nothing is scored: reported as the whole step reports it)
    const RowsResult r = run_rows(t, 0, rows, 1.0);
    return {r.mean(), r.n_scored};
  }
  RowsResult sum;
  for (int64_t row0 = 0; row0 < rows; row0 += micro_batch_) {
    const int64_t n = std::min(micro_batch_, rows - row0);
    const int64_t scored = scored_per_row.narrow(0, row0, n).sum().item<int64_t>();
    if (scored == 0) continue;  // padding only: no loss, no gradient
    const RowsResult r = run_rows(t, row0, n, static_cast<double>(scored) / total);
    sum.nll_sum += r.nll_sum;
    sum.n_scored += r.n_scored;
  }
  return {sum.mean(), sum.n_scored};
}

std::vector<at::Tensor> LocalTrainStep::parameters() const { return adapters_.parameters(); }

}  // namespace cleave
