// Text generation from a (possibly adapted) LlamaModel: greedy decoding or
// sampling with temperature, top-k and top-p, deterministic for a seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "model/tokenizer.h"

namespace cleave {

class LlamaModel;
class LinearAdapters;

struct SamplingOptions {
  double temperature = 0.8;      // 0: greedy (argmax)
  int64_t top_k = 40;            // keep the k most likely tokens; 0: all
  double top_p = 0.95;           // keep the smallest set with this much probability; 1: all
  uint64_t seed = 0;             // the sampler's own std::mt19937_64
  int64_t max_new_tokens = 64;
  bool stop_at_eos = true;

  void validate() const;         // throws std::invalid_argument naming the field
};

// Picks the next token from logits [vocab] (any float type). Greedy when
// temperature is 0; otherwise logits / temperature, top-k, softmax, top-p,
// then one draw from `rng`. Ties in the ranking go to the lower token id, so a
// choice is the same on every platform for the same seed.
TokenId sample_token(const at::Tensor& logits, const SamplingOptions& options, std::mt19937_64& rng);

// Called with every generated token as soon as it is chosen (for streaming).
using TokenCallback = std::function<void(TokenId)>;

// Continues `prompt` (ids, BOS included if wanted) by up to max_new_tokens
// tokens; returns the new tokens only (the EOS that stopped it included).
// Every step recomputes the whole context (no KV cache yet: fine for the small
// models and short outputs this serves); the context is cut to the model's
// last config().context_length tokens, so long outputs slide a window.
std::vector<TokenId> generate(const LlamaModel& model, const LinearAdapters* adapters,
                              const std::vector<TokenId>& prompt, TokenId eos,
                              const SamplingOptions& options, const TokenCallback& on_token = {});

}  // namespace cleave
