#include "audit/white_box_inversion.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "model/llama_model.h"

namespace cleave::audit {
namespace {

std::vector<TokenId> to_ids(const at::Tensor& ids) {  // [N] int64
  const at::Tensor cpu = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = cpu.data_ptr<int64_t>();
  return std::vector<TokenId>(p, p + cpu.numel());
}

}  // namespace

void WhiteBoxOptions::validate() const {
  if (candidates < 0) {
    throw std::invalid_argument("white-box candidates must be >= 0 (0: every token), got " +
                                std::to_string(candidates));
  }
  if (language_candidates < 0) {
    throw std::invalid_argument("white-box language_candidates must be >= 0 (0: none), got " +
                                std::to_string(language_candidates));
  }
  if (max_candidates < 0) {
    throw std::invalid_argument("white-box max_candidates must be >= 0 (0: every token), got " +
                                std::to_string(max_candidates));
  }
  if (max_batch_tokens < 1) {
    throw std::invalid_argument("white-box max_batch_tokens must be >= 1, got " +
                                std::to_string(max_batch_tokens));
  }
}

WhiteBoxInversion::WhiteBoxInversion(const LlamaModel& model, const LinearAdapters* adapters,
                                     const SmashedChannel& channel, WhiteBoxOptions options)
    : model_(model),
      adapters_(adapters),
      cut_layer_(channel.cut_layer),
      noise_std_(channel.protection.noise * channel.protection.clip),
      codec_(channel.codec),
      options_(options),
      view_(channel) {
  options_.validate();
  channel.validate(model.n_layers());
  // Every token alone at position 0: what position 0 of any row looks like.
  table_ = last_position(at::arange(model.config().vocab_size, at::kLong).unsqueeze(1));  // [vocab, dim]
}

at::Tensor WhiteBoxInversion::last_position(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  const int64_t n = tokens.size(0), length = tokens.size(1);
  const int64_t rows_per_pass = std::max<int64_t>(1, options_.max_batch_tokens / length);
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += rows_per_pass) {
    const at::Tensor chunk = tokens.slice(0, begin, std::min(n, begin + rows_per_pass));  // [n', length]
    const at::Tensor h =
        model_.run_blocks(model_.embed(chunk), 0, cut_layer_, adapters_);  // [n', length, dim]
    parts.push_back(h.select(1, length - 1).to(at::kCPU, at::kFloat));     // [n', dim]
  }
  return view_(at::cat(parts, 0));  // [n, dim]
}

double WhiteBoxInversion::explained_distance(const at::Tensor& observed, const at::Tensor& candidate) const {
  const double dim = static_cast<double>(observed.numel());
  const double observed_norm = observed.norm().item<double>(),
               candidate_norm = candidate.norm().item<double>();
  double codec = 0;  // the codec's rounding of the site's vector plus that of the candidate
  switch (codec_) {
    case wire::WireDType::F32:
      break;
    case wire::WireDType::F16:
      codec = std::ldexp(observed_norm + candidate_norm, -11) + 1e-7 * std::sqrt(dim);
      break;
    case wire::WireDType::BF16:
      codec = std::ldexp(observed_norm + candidate_norm, -8);
      break;
    case wire::WireDType::I8_ROWSCALE:  // half a step of max|x| / 127 per element
      codec = std::sqrt(dim) / 254.0 *
              (observed.abs().max().item<double>() + candidate.abs().max().item<double>());
      break;
    case wire::WireDType::I4_GROUP:  // half a step of a group's max|x| / 7, rounded up to a bfloat16
      codec = std::sqrt(dim) / 14.0 * (1.0 + std::ldexp(1.0, -7)) *
              (observed.abs().max().item<double>() + candidate.abs().max().item<double>());
      break;
  }
  const double arithmetic = (model_.compute_dtype() == at::kFloat ? 1e-3 : 3e-2) * candidate_norm + 1e-5;
  return noise_std_ * (std::sqrt(dim) + 5.0) + codec + arithmetic;
}

WhiteBoxInversion::CandidateOrder WhiteBoxInversion::candidate_order(const at::Tensor& table_distance,
                                                                     const at::Tensor& prefix) const {
  const int64_t A = table_distance.size(0), vocab = table_distance.size(1);
  const at::Tensor ranking =
      table_distance.argsort(/*dim=*/1, /*descending=*/false).contiguous();  // [A, vocab]
  const int64_t from_table = std::min(options_.candidates == 0 ? vocab : options_.candidates, vocab);
  const int64_t from_language = std::min(options_.language_candidates, vocab);
  CandidateOrder result;
  at::Tensor likeliest;  // [A, from_language]: the base model's likeliest next tokens after each prefix
  if (from_language > 0 || options_.language_prior) {
    const at::Tensor h =
        model_.run_blocks(model_.embed(prefix), 0, model_.n_layers(), adapters_);  // [A, t, dim]
    const at::Tensor logits = model_.head(h.slice(1, h.size(1) - 1), adapters_)
                                  .select(1, 0)
                                  .to(at::kCPU, at::kFloat);  // [A, vocab]
    result.log_prior = at::log_softmax(logits, 1);
    likeliest = std::get<1>(logits.topk(from_language, 1)).contiguous();
  }
  at::Tensor& order = result.order = at::empty({A, vocab}, at::kLong);
  std::vector<uint8_t> seen(vocab);
  for (int64_t a = 0; a < A; ++a) {
    const int64_t* ranked = ranking.data_ptr<int64_t>() + a * vocab;
    int64_t* out = order.data_ptr<int64_t>() + a * vocab;
    int64_t n = 0;
    std::fill(seen.begin(), seen.end(), 0);
    auto take = [&](int64_t token) {
      if (!seen[token]) seen[token] = 1, out[n++] = token;
    };
    for (int64_t i = 0; i < from_table; ++i) take(ranked[i]);
    for (int64_t i = 0; i < from_language; ++i) take(likeliest.data_ptr<int64_t>()[a * from_language + i]);
    for (int64_t i = from_table; i < vocab; ++i) take(ranked[i]);
  }
  return result;
}

std::vector<TokenId> WhiteBoxInversion::invert_position(const at::Tensor& target, const at::Tensor& prefix) {
  const int64_t A = target.size(0), dim = target.size(1), t = prefix.size(1), vocab = table_.size(0);
  const at::Tensor table_distance = at::cdist(target, table_);  // [A, vocab]
  if (t == 0) return to_ids(table_distance.argmin(1));          // the table is exact at position 0
  const CandidateOrder ranked = candidate_order(table_distance, prefix);
  const at::Tensor& order = ranked.order;  // [A, vocab]
  // The posterior weighs each candidate's likelihood under the noise with the
  // base model's prior; without noise the nearest is the only likely one.
  const bool posterior = options_.language_prior && noise_std_ > 0;
  const int64_t first = std::min(
      vocab, (options_.candidates == 0 ? vocab : options_.candidates) + options_.language_candidates);
  const int64_t widest =
      options_.max_candidates == 0 ? vocab : std::min(std::max(first, options_.max_candidates), vocab);

  std::vector<TokenId> best_token(A, 0);  // the choice: nearest, or best posterior score
  std::vector<double> best_score(A, std::numeric_limits<double>::infinity());
  std::vector<double> best_distance(A, std::numeric_limits<double>::infinity());
  std::vector<at::Tensor> best_activation(A);  // the nearest's, for explained_distance
  std::vector<int64_t> pending(A);             // rows no verified candidate explains yet
  for (int64_t a = 0; a < A; ++a) pending[a] = a;
  for (int64_t verified = 0; !pending.empty() && verified < widest;) {
    const int64_t next = verified == 0 ? first : std::min(widest, verified * 4);
    const int64_t width = next - verified, P = static_cast<int64_t>(pending.size());
    const at::Tensor which = at::tensor(pending, at::kLong);                              // [P]
    const at::Tensor candidates = order.index_select(0, which).slice(1, verified, next);  // [P, width]
    const at::Tensor tokens = at::cat(
        {prefix.index_select(0, which).repeat_interleave(width, 0), candidates.reshape({P * width, 1})},
        1);                                                                      // [P*width, t+1]
    const at::Tensor activations = last_position(tokens).view({P, width, dim});  // [P, width, dim]
    const at::Tensor pending_target = target.index_select(0, which);             // [P, dim]
    const at::Tensor distance =
        (activations - pending_target.unsqueeze(1)).pow(2).sum(-1).sqrt();  // [P, width]
    const auto [nearest, nearest_index] = distance.min(1);                  // [P], [P]
    // -log p(candidate | observed) + const: the Gaussian's exponent less the log prior.
    const at::Tensor score = posterior ? distance.pow(2) / (2 * noise_std_ * noise_std_) -
                                             ranked.log_prior.index_select(0, which).gather(1, candidates)
                                       : distance;     // [P, width]
    const auto [top_score, top_index] = score.min(1);  // [P], [P]
    std::vector<int64_t> unexplained;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t a = pending[p];
      if (top_score[p].item<double>() < best_score[a]) {
        best_score[a] = top_score[p].item<double>();
        best_token[a] = static_cast<TokenId>(candidates[p][top_index[p].item<int64_t>()].item<int64_t>());
      }
      if (nearest[p].item<double>() < best_distance[a]) {
        best_distance[a] = nearest[p].item<double>();
        best_activation[a] = activations[p][nearest_index[p].item<int64_t>()];
      }
      if (best_distance[a] > explained_distance(pending_target[p], best_activation[a]))
        unexplained.push_back(a);
    }
    verified_ += P * width;
    pending = std::move(unexplained);
    verified = next;
  }
  verified_positions_ += A;
  return best_token;
}

std::vector<TokenRow> WhiteBoxInversion::invert(const std::vector<at::Tensor>& observed,
                                                const InversionProgress& progress) {
  at::NoGradGuard no_grad;
  const int64_t dim = table_.size(1);
  int64_t longest = 0, total = 0;
  for (const at::Tensor& row : observed) {
    if (row.dim() != 2 || row.size(1) != dim) {
      throw std::invalid_argument("white-box inversion: an observed row has shape " + c10::str(row.sizes()) +
                                  ", expected [T, " + std::to_string(dim) + "]");
    }
    longest = std::max(longest, row.size(0));
    total += row.size(0);
  }
  std::vector<TokenRow> recovered(observed.size());
  int64_t done = 0;
  for (int64_t t = 0; t < longest; ++t) {
    std::vector<size_t> active;  // rows with a position t
    std::vector<at::Tensor> targets;
    std::vector<int64_t> prefix_ids;
    for (size_t r = 0; r < observed.size(); ++r) {
      if (observed[r].size(0) <= t) continue;
      active.push_back(r);
      targets.push_back(observed[r][t].to(at::kFloat));
      prefix_ids.insert(prefix_ids.end(), recovered[r].begin(), recovered[r].end());
    }
    const int64_t A = static_cast<int64_t>(active.size());
    const at::Tensor prefix = at::tensor(prefix_ids, at::kLong).view({A, t});         // [A, t]
    const std::vector<TokenId> chosen = invert_position(at::stack(targets), prefix);  // from [A, dim]
    for (int64_t a = 0; a < A; ++a) recovered[active[a]].push_back(chosen[a]);
    done += A;
    if (progress) progress(done, total);
  }
  return recovered;
}

double WhiteBoxInversion::mean_candidates_verified() const {
  return verified_positions_ > 0 ? static_cast<double>(verified_) / static_cast<double>(verified_positions_)
                                 : 0;
}

std::vector<TokenRow> WhiteBoxInversion::invert_without_context(
    const std::vector<at::Tensor>& observed) const {
  at::NoGradGuard no_grad;
  std::vector<TokenRow> recovered;
  for (const at::Tensor& row : observed) {
    recovered.push_back(to_ids(at::cdist(row.to(at::kFloat), table_).argmin(1)));  // [T, vocab] -> [T]
  }
  return recovered;
}

}  // namespace cleave::audit
