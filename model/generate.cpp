#include "model/generate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model/kv_cache.h"
#include "model/llama_model.h"

namespace cleave {
namespace {

struct Candidate {
  double logit;  // already divided by the temperature
  TokenId id;
};

// Uniform in [0, 1) from the top 53 bits: std::uniform_real_distribution is
// not specified exactly, this is, so a seed gives the same text everywhere.
double uniform_01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

TokenId argmax(const float* values, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<TokenId>(best);
}

}  // namespace

void SamplingOptions::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature)) {
    throw std::invalid_argument("temperature must be >= 0 (0 is greedy), got " +
                                std::to_string(temperature));
  }
  if (top_k < 0) throw std::invalid_argument("top-k must be >= 0 (0 keeps all tokens)");
  if (!(top_p > 0 && top_p <= 1)) {
    throw std::invalid_argument("top-p must be in (0, 1], got " + std::to_string(top_p));
  }
  if (max_new_tokens < 0) throw std::invalid_argument("max new tokens must be >= 0");
}

TokenId sample_token(const at::Tensor& logits, const SamplingOptions& options, std::mt19937_64& rng) {
  const at::Tensor flat = logits.detach().to(at::kCPU, at::kFloat).contiguous().view({-1});  // [vocab]
  const int64_t n = flat.numel();
  if (n == 0) throw std::invalid_argument("sample_token: empty logits");
  const float* values = flat.data_ptr<float>();
  if (options.temperature == 0) return argmax(values, n);

  std::vector<Candidate> candidates(n);
  for (int64_t i = 0; i < n; ++i) {
    candidates[i] = {values[i] / options.temperature, static_cast<TokenId>(i)};
  }
  auto ranks_before = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  const int64_t keep = options.top_k > 0 ? std::min(options.top_k, n) : n;
  std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(), ranks_before);
  candidates.resize(keep);

  // Softmax over the kept tokens, then the nucleus: the shortest prefix of
  // the ranking whose probability reaches top_p.
  std::vector<double> probs(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) {
    probs[i] = std::exp(candidates[i].logit - candidates[0].logit);
    total += probs[i];
  }
  int64_t nucleus = keep;
  if (options.top_p < 1) {
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) {
      mass += probs[i] / total;
      if (mass >= options.top_p) {
        nucleus = i + 1;
        break;
      }
    }
  }
  double nucleus_total = 0;
  for (int64_t i = 0; i < nucleus; ++i) nucleus_total += probs[i];

  const double target = uniform_01(rng) * nucleus_total;
  double cumulative = 0;
  for (int64_t i = 0; i < nucleus; ++i) {
    cumulative += probs[i];
    if (target < cumulative) return candidates[i].id;
  }
  return candidates[nucleus - 1].id;  // rounding left target at the very top
}

ModelDecoder::ModelDecoder(const LlamaModel& model, const LinearAdapters* adapters, int64_t capacity)
    : model_(model), adapters_(adapters) {
  const int64_t context = std::max<int64_t>(1, model.config().context_length);
  cache_ = std::make_unique<KvCache>(model.config(), 0, model.n_layers(),
                                     capacity > 0 ? std::min(capacity, context) : context);
}

ModelDecoder::~ModelDecoder() = default;

at::Tensor ModelDecoder::feed(const std::vector<TokenId>& tokens) {
  at::NoGradGuard no_grad;
  const std::vector<int64_t> ids(tokens.begin(), tokens.end());
  const at::Tensor h = model_.run_blocks_cached(model_.embed(at::tensor(ids, at::kLong).unsqueeze(0)), *cache_,
                                                adapters_);               // [1, T, dim]
  return model_.head(h.narrow(1, h.size(1) - 1, 1), adapters_)[0][0];    // [vocab]
}

void ModelDecoder::restart() { cache_->clear(); }

int64_t ModelDecoder::capacity() const { return cache_->capacity(); }

std::vector<TokenId> generate(Decoder& decoder, const std::vector<TokenId>& prompt, TokenId eos,
                              const SamplingOptions& options, const TokenCallback& on_token) {
  options.validate();
  if (prompt.empty()) {
    throw std::invalid_argument("generate: the prompt has no tokens; start it with BOS at least");
  }
  at::NoGradGuard no_grad;
  std::mt19937_64 rng(options.seed);
  const int64_t capacity = decoder.capacity();
  std::vector<TokenId> ids = prompt;
  std::vector<TokenId> generated;
  if (options.max_new_tokens == 0) return generated;
  // `held`: how many of the newest ids the decoder holds.
  auto refill = [&](size_t keep) {
    decoder.restart();
    return decoder.feed(std::vector<TokenId>(ids.end() - static_cast<std::ptrdiff_t>(keep), ids.end()));
  };
  size_t held = std::min<size_t>(ids.size(), static_cast<size_t>(capacity));
  at::Tensor logits = refill(held);  // the prompt (its last `capacity` tokens) in one pass
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const TokenId next = sample_token(logits, options, rng);
    ids.push_back(next);
    generated.push_back(next);
    if (on_token) on_token(next);
    if (options.stop_at_eos && next == eos) break;
    if (step + 1 == options.max_new_tokens) break;  // no logits needed after the last token
    if (static_cast<int64_t>(held) < capacity) {
      logits = decoder.feed({next});
      ++held;
    } else {
      held = std::max<size_t>(1, static_cast<size_t>(capacity) / 2);  // slide: the newest half
      logits = refill(held);
    }
  }
  return generated;
}

std::vector<TokenId> generate(const LlamaModel& model, const LinearAdapters* adapters,
                              const std::vector<TokenId>& prompt, TokenId eos,
                              const SamplingOptions& options, const TokenCallback& on_token) {
  // KV caches for what this call can reach, not the model's whole context
  // (which may be 128k positions).
  const int64_t reach = static_cast<int64_t>(prompt.size()) + std::max<int64_t>(options.max_new_tokens, 1);
  ModelDecoder decoder(model, adapters, reach);
  return generate(decoder, prompt, eos, options, on_token);
}

}  // namespace cleave
