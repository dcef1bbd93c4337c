// The white-box inversion of smashed activations: an attacker that holds the
// frozen base (and, colluding with the aggregator, the site's adapters)
// recovers the site's tokens position by position. Position t's activation
// depends only on tokens 0..t, so with the prefix recovered so far the
// attacker runs each candidate token through the same bottom blocks, puts
// the result through what the site's channel does that it can reproduce (the
// clip and the codec; not the noise draws), and keeps the nearest in L2: with
// Gaussian noise of the same std on every element, that is the
// maximum-likelihood choice among the candidates.
//
// Which candidates: a context-free table holds every vocabulary token's
// activation alone at position 0 (exact for position 0, and a ranking
// elsewhere while the residual stream still carries the token's embedding).
// At each position the attacker first verifies the `candidates` nearest
// table entries and the base model's `language_candidates` likeliest next
// tokens after the recovered prefix (the split server holds the whole base,
// head included); while none explains the observation (is nearer than the
// noise and the codec could account for, see explained_distance) the search
// widens down the table's ranking, 4x at a time, up to max_candidates.
// Without noise the attack is then exact wherever the prefix is right; with
// noise it keeps the nearest candidate verified (maximum likelihood; the
// language model only proposes) or, with language_prior, the candidate of
// highest posterior: Gaussian likelihood times the base model's probability
// of the token after the recovered prefix (a stronger attacker still).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "audit/smashed_channel.h"

namespace cleave::audit {

struct WhiteBoxOptions {
  int64_t candidates = 4;            // nearest table entries verified first; 0: the whole vocabulary
  int64_t language_candidates = 12;  // likeliest next tokens verified first too; 0: none
  bool language_prior = false;       // choose by posterior instead of distance (with noise)
  int64_t max_candidates = 0;        // the search widens up to this many; 0: the whole vocabulary
  int64_t max_batch_tokens = int64_t{1} << 16;  // candidates x length per forward pass

  void validate() const;  // throws std::invalid_argument naming the field
};

// Called after each position with (positions done, positions in all).
using InversionProgress = std::function<void(int64_t done, int64_t total)>;

class WhiteBoxInversion {
 public:
  // `model` and `adapters` must outlive this. `channel` says what the
  // attacker knows of the site's channel (cut, clip, codec).
  WhiteBoxInversion(const LlamaModel& model, const LinearAdapters* adapters, const SmashedChannel& channel,
                    WhiteBoxOptions options = {});

  // observed: one [T, dim] tensor per row, as received -> T tokens per row.
  // All rows advance together, one position at a time.
  std::vector<TokenRow> invert(const std::vector<at::Tensor>& observed,
                               const InversionProgress& progress = {});

  // The context-free attack: each position's nearest table entry, ignoring
  // the prefix. Weaker above cut 0; the reference the prefix is measured by.
  std::vector<TokenRow> invert_without_context(const std::vector<at::Tensor>& observed) const;

  // Candidates verified with a prefix per position after 0, over every invert() so far.
  double mean_candidates_verified() const;

  const at::Tensor& table() const { return table_; }  // [vocab, dim], as the attacker views it

  // The largest L2 distance at which `candidate` (as viewed) still explains
  // `observed` [dim]: the noise's radius (std * (sqrt(dim) + 5), exceeded
  // with probability below 1e-5), the codec's rounding of both, and a margin
  // for arithmetic that differs with the batch's shape.
  double explained_distance(const at::Tensor& observed, const at::Tensor& candidate) const;

 private:
  // Tokens [N, t + 1] -> the last position's activation as viewed [N, dim].
  at::Tensor last_position(const at::Tensor& tokens);
  // Position t of A rows: target [A, dim] as received, prefix [A, t] recovered -> A tokens.
  std::vector<TokenId> invert_position(const at::Tensor& target, const at::Tensor& prefix);
  struct CandidateOrder {
    at::Tensor order;      // [A, vocab] int64: each row's tokens in the order they are verified
    at::Tensor log_prior;  // [A, vocab]: log p(token | prefix) under the base; undefined if unused
  };
  CandidateOrder candidate_order(const at::Tensor& table_distance, const at::Tensor& prefix) const;

  const LlamaModel& model_;
  const LinearAdapters* adapters_;
  int64_t cut_layer_;
  double noise_std_;  // per element: noise x clip
  wire::WireDType codec_;
  WhiteBoxOptions options_;
  CandidateView view_;
  at::Tensor table_;  // [vocab, dim]
  int64_t verified_ = 0, verified_positions_ = 0;
};

}  // namespace cleave::audit
