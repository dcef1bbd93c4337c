// Text generation from a (possibly adapted) LlamaModel: greedy decoding or
// sampling with temperature, top-k and top-p, deterministic for a seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "model/tokenizer.h"

namespace cleave {

class KvCache;
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
  // Argmax for exactly `n` new tokens, EOS or not: what equality checks of
  // two decoders (local and split, cached and not) compare.
  static SamplingOptions greedy(int64_t n) {
    SamplingOptions o;
    o.temperature = 0;
    o.max_new_tokens = n;
    o.stop_at_eos = false;
    return o;
  }
};

// Picks the next token from logits [vocab] (any float type). Greedy when
// temperature is 0; otherwise logits / temperature, top-k, softmax, top-p,
// then one draw from `rng`. Ties in the ranking go to the lower token id, so a
// choice is the same on every platform for the same seed.
TokenId sample_token(const at::Tensor& logits, const SamplingOptions& options, std::mt19937_64& rng);

// Called with every generated token as soon as it is chosen (for streaming).
using TokenCallback = std::function<void(TokenId)>;

// What generate() drives: a model whose state (its KV caches, wherever they
// live) holds the positions fed since the last restart. Local generation
// runs every block here (ModelDecoder); split generation runs the site's
// blocks here and the rest on a split server (split/split_decoder.h).
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Feeds `tokens` at the next positions (all of them in one pass: the
  // prompt's prefill, then one token per step) and returns the logits of
  // the last one: [vocab].
  virtual at::Tensor feed(const std::vector<TokenId>& tokens) = 0;
  // Forgets every position: the next feed() starts at position 0.
  virtual void restart() = 0;
  // Positions it can hold between restarts (at most the model's context).
  virtual int64_t capacity() const = 0;
};

// Local generation: every block of `model` with `adapters` (may be null),
// KV caches of `capacity` positions (0: the model's context length).
class ModelDecoder : public Decoder {
 public:
  ModelDecoder(const LlamaModel& model, const LinearAdapters* adapters, int64_t capacity = 0);
  ~ModelDecoder() override;
  at::Tensor feed(const std::vector<TokenId>& tokens) override;
  void restart() override;
  int64_t capacity() const override;

 private:
  const LlamaModel& model_;
  const LinearAdapters* adapters_;
  std::unique_ptr<KvCache> cache_;
};

// Continues `prompt` (ids, BOS included if wanted) by up to max_new_tokens
// tokens; returns the new tokens only (the EOS that stopped it included).
// The prompt is fed in one pass, then one token per step. When the sequence
// outgrows the decoder's capacity, the window slides: the decoder restarts
// on the last half of it (the newest tokens), so long outputs go on with
// the most recent context.
std::vector<TokenId> generate(Decoder& decoder, const std::vector<TokenId>& prompt, TokenId eos,
                              const SamplingOptions& options, const TokenCallback& on_token = {});

// generate() with a ModelDecoder over `model` and `adapters`, its KV caches
// sized for the prompt and max_new_tokens (at most the model's context).
std::vector<TokenId> generate(const LlamaModel& model, const LinearAdapters* adapters,
                              const std::vector<TokenId>& prompt, TokenId eos,
                              const SamplingOptions& options, const TokenCallback& on_token = {});

}  // namespace cleave
