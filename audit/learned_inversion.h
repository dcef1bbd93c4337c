// The learned inversion of smashed activations: an attacker without the
// site's text but with public text of its kind runs that text through the
// same bottom blocks and the same channel (clip, its own noise draws, codec),
// and trains a classifier from one received activation to the token at its
// position. A small MLP (or, with hidden 0, a linear softmax model) over
// standardized features, trained with AdamW from a fixed seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "audit/smashed_channel.h"

namespace cleave::audit {

struct LearnedInversionOptions {
  int64_t hidden = 256;      // width of the one hidden layer; 0: linear softmax
  int64_t steps = 300;       // AdamW steps
  int64_t batch_size = 512;  // activations per step, drawn with replacement
  double lr = 3e-3;          // peak; linear warmup, cosine decay to a tenth
  double weight_decay = 0.01;
  uint64_t seed = 1;  // initialisation and batch draws

  void validate() const;  // throws std::invalid_argument naming the field
};

// Called every few steps with (step, steps, mean training loss since the last call).
using TrainingProgress = std::function<void(int64_t step, int64_t steps, double loss)>;

class LearnedInversion {
 public:
  // features: [N, dim] activations as received; labels: [N] int64 token ids in [0, vocab).
  static LearnedInversion train(const at::Tensor& features, const at::Tensor& labels, int64_t vocab,
                                const LearnedInversionOptions& options,
                                const TrainingProgress& progress = {});

  at::Tensor logits(const at::Tensor& features) const;  // [N, dim] -> [N, vocab]
  TokenRow predict(const at::Tensor& observed) const;   // [T, dim] -> T tokens

 private:
  at::Tensor hidden_activations(const at::Tensor& features) const;  // [N, dim] -> [N, hidden or dim]

  at::Tensor mean_, inv_std_;  // [dim]: the training features' statistics
  at::Tensor w1_, b1_;         // [hidden, dim], [hidden]; undefined when linear
  at::Tensor w2_, b2_;         // [vocab, hidden or dim], [vocab]
};

}  // namespace cleave::audit
