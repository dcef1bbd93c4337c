// One training step's forward and backward pass, behind an interface so the
// same trainer drives a local (unsplit) model and a split client.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "client/batching.h"

namespace cleave {
class LlamaModel;
namespace lora { class AdapterSet; }

struct BatchTensors {
  at::Tensor inputs;   // [B, T] int64
  at::Tensor targets;  // [B, T] int64
  at::Tensor weights;  // [B, T] float32
};
BatchTensors to_tensors(const data::Batch& batch);

// What the trainer knows about the step it asks for.
struct StepContext {
  int64_t step = 0;        // 0-based step within this training run
  uint32_t round = 0;      // federated round (0 outside federation)
  double lr = 0;           // learning rate of this step
  double grad_clip = 0;    // max global gradient norm (0: off)
};

struct StepResult {
  double loss = 0;          // mean NLL over scored targets
  int64_t n_scored = 0;
};

class TrainStep {
 public:
  virtual ~TrainStep() = default;
  // Forward and backward on one batch: leaves gradients in the trainable
  // parameters' .grad() (accumulating).
  virtual StepResult forward_backward(const data::Batch& batch, const StepContext& context) = 0;
  // The parameters this side trains (its adapters).
  virtual std::vector<at::Tensor> parameters() const = 0;
};

// The whole model on this machine. The loss goes through
// LlamaModel::head_loss (no [B, T, vocab] logits unless the output projection
// is adapted). With `recompute_activations` (config train.recompute) every
// block's activations are recomputed in the backward pass instead of kept:
// the same gradients, a much smaller peak memory, about one more forward pass.
// With `micro_batch` rows (config train.micro_batch; 0 or >= the batch: the
// whole batch at once) the batch goes through forward and backward that many
// rows at a time and the gradients accumulate, each micro-batch's mean loss
// weighted by its share of the batch's scored targets: the gradient of the
// whole batch's mean loss (without dropout, equal up to summation order),
// with the activation memory of a micro-batch.
class LocalTrainStep : public TrainStep {
 public:
  LocalTrainStep(std::shared_ptr<const LlamaModel> model, lora::AdapterSet& adapters,
                 bool recompute_activations = false, int64_t micro_batch = 0);
  StepResult forward_backward(const data::Batch& batch, const StepContext& context) override;
  std::vector<at::Tensor> parameters() const override;

 private:
  // Forward and backward on rows [row0, row0 + rows) of `t`; the rows' mean
  // loss is scaled by `share` of the batch before backward.
  struct RowsResult {
    double nll_sum = 0;
    int64_t n_scored = 0;
    double mean() const { return nll_sum / static_cast<double>(n_scored > 0 ? n_scored : 1); }
  };
  RowsResult run_rows(const BatchTensors& t, int64_t row0, int64_t rows, double share);

  std::shared_ptr<const LlamaModel> model_;
  lora::AdapterSet& adapters_;
  bool recompute_activations_;
  int64_t micro_batch_;
};

}  // namespace cleave
