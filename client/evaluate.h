// Held-out perplexity of a (possibly adapted) model.
#pragma once

#include <cstdint>
#include <vector>

#include "client/batching.h"

namespace cleave {
class LlamaModel;
class LinearAdapters;

struct EvalResult {
  double nll_sum = 0;
  int64_t n_scored = 0;
  double mean_nll() const { return n_scored ? nll_sum / n_scored : 0.0; }
  double perplexity() const;
};

// Scores every weighted target of the batches.
EvalResult evaluate(const LlamaModel& model, const LinearAdapters* adapters,
                    const std::vector<data::Batch>& batches);

// llama.cpp's llama-perplexity scheme: each chunk (first token already BOS) is
// run on its own; only predictions from position ctx/2 on are scored.
EvalResult evaluate_chunks(const LlamaModel& model, const LinearAdapters* adapters,
                           const std::vector<std::vector<int32_t>>& chunks, int64_t batch_size = 4);

}  // namespace cleave
