// Activation recomputation (gradient checkpointing) for one piece of the
// model, e.g. a decoder block: its intermediates are not kept for backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace cleave {

using PieceFn = std::function<at::Tensor(const at::Tensor& input)>;

// Runs `piece(input)` without saving any of its intermediates. The backward
// pass runs `piece` again, with autograd on, from the saved `input`, and
// differentiates that second run with respect to `input` (if it requires
// grad) and `parameters` (the trainable tensors `piece` reads, e.g. a
// block's adapters), whose .grad() then accumulates as it would without
// recomputation. The CPU random state (adapter dropout) is replayed, so
// both runs draw the same masks. `piece` and `parameters` must stay valid
// until the backward pass. When nothing needs a gradient, it is a plain call.
at::Tensor run_recomputed(const PieceFn& piece, const at::Tensor& input,
                          const std::vector<at::Tensor>& parameters);

}  // namespace cleave
