// What crosses the cut of a split deployment, from the site's bottom blocks
// to what the split server decodes: the site's protection (per-token clip,
// Gaussian noise: split/smashed_protection.h), then the activation codec
// (split/tensor_wire.h). The audit runs the same code the site and the split
// server run, on one machine and without a socket.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "split/smashed_protection.h"
#include "wire/tensor.h"

namespace cleave {
class LlamaModel;
class LinearAdapters;
}  // namespace cleave

namespace cleave::audit {

// One row of token ids as the site feeds it to its bottom blocks.
using TokenRow = std::vector<TokenId>;

struct SmashedChannel {
  int64_t cut_layer = 1;                // the site runs blocks [0, cut_layer)
  split::SmashedProtection protection;  // clip, noise and the site's noise seed
  wire::WireDType codec = wire::WireDType::F32;

  // Throws std::invalid_argument naming split.cut_layer / split.activation_*.
  void validate(int64_t n_layers) const;
  std::string describe() const;  // "cut_layer 2, f16, per-token L2 clip 8, ..."
};

// The codec's round trip, exactly what a split server decodes:
// [..., dim] -> [..., dim] CPU float32.
at::Tensor through_codec(const at::Tensor& x, wire::WireDType codec);

// The site's embeddings and blocks [0, cut_layer) on `rows`, without
// gradients: one [T, dim] CPU float32 tensor per row (rows of equal length
// run as one batch).
std::vector<at::Tensor> bottom_activations(const LlamaModel& model, const LinearAdapters* adapters,
                                           const std::vector<TokenRow>& rows, int64_t cut_layer);

// The sending end: the site's protection with its own noise draws, then the
// codec. One instance per site; every call draws fresh noise.
class SiteSender {
 public:
  explicit SiteSender(const SmashedChannel& channel);
  at::Tensor send(const at::Tensor& smashed);  // [T, dim] -> [T, dim] as decoded

 private:
  wire::WireDType codec_;
  split::SmashedProtector protector_;
};

// What the attacker does to its own candidate activations to compare them
// with what it received: the site's clip (it is part of the protocol) and
// the codec, but no noise (the draws are the site's). [..., dim] -> [..., dim].
class CandidateView {
 public:
  explicit CandidateView(const SmashedChannel& channel);
  at::Tensor operator()(const at::Tensor& activations);

 private:
  wire::WireDType codec_;
  split::SmashedProtector clip_;
};

}  // namespace cleave::audit
