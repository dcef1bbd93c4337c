#include "client/evaluate.h"

#include <ATen/ATen.h>

#include <cmath>

#include "client/train_step.h"
#include "model/llama_model.h"
#include "model/loss.h"

namespace cleave {

double EvalResult::perplexity() const { return std::exp(mean_nll()); }

EvalResult evaluate(const LlamaModel& model, const LinearAdapters* adapters,
                    const std::vector<data::Batch>& batches) {
  at::NoGradGuard no_grad;
  EvalResult r;
  for (const data::Batch& batch : batches) {
    const BatchTensors t = to_tensors(batch);
    LossResult loss = cross_entropy(model.forward(t.inputs, adapters), t.targets, t.weights);
    r.nll_sum += loss.nll_sum;
    r.n_scored += loss.n_scored;
  }
  return r;
}

EvalResult evaluate_chunks(const LlamaModel& model, const LinearAdapters* adapters,
                           const std::vector<std::vector<int32_t>>& chunks, int64_t batch_size) {
  at::NoGradGuard no_grad;
  EvalResult r;
  for (size_t begin = 0; begin < chunks.size(); begin += batch_size) {
    const size_t end = std::min(chunks.size(), begin + static_cast<size_t>(batch_size));
    const int64_t ctx = static_cast<int64_t>(chunks[begin].size());
    const int64_t first = data::perplexity_first_scored(ctx);
    std::vector<int64_t> ids;
    for (size_t c = begin; c < end; ++c) ids.insert(ids.end(), chunks[c].begin(), chunks[c].end());
    const int64_t B = static_cast<int64_t>(end - begin);
    at::Tensor tokens = at::tensor(ids, at::kLong).view({B, ctx});            // [B, ctx]
    at::Tensor logits = model.forward(tokens, adapters);                      // [B, ctx, vocab]
    // positions first .. ctx-2 predict tokens first+1 .. ctx-1
    at::Tensor scored_logits = logits.narrow(1, first, ctx - 1 - first);
    at::Tensor targets = tokens.narrow(1, first + 1, ctx - 1 - first);
    at::Tensor weights = at::ones(targets.sizes(), at::kFloat);
    LossResult loss = cross_entropy(scored_logits, targets, weights);
    r.nll_sum += loss.nll_sum;
    r.n_scored += loss.n_scored;
  }
  return r;
}

}  // namespace cleave
