#include "audit/smashed_channel.h"

#include <ATen/ATen.h>

#include <map>
#include <stdexcept>

#include "model/llama_model.h"
#include "split/tensor_wire.h"

namespace cleave::audit {
namespace {

// The noise-free protector the attacker clips its candidates with: a fixed
// seed, so constructing it never asks the OS for entropy it will not use.
split::SmashedProtection clip_only(split::SmashedProtection protection) {
  protection.noise = 0;
  protection.noise_seed = 1;
  return protection;
}

// The name `--codec` and split.activation_codec take.
const char* codec_flag_name(wire::WireDType codec) {
  switch (codec) {
    case wire::WireDType::F32:
      return "f32";
    case wire::WireDType::F16:
      return "f16";
    case wire::WireDType::BF16:
      return "bf16";
    case wire::WireDType::I8_ROWSCALE:
      return "int8";
    case wire::WireDType::I4_GROUP:
      return "int4";
  }
  return "an unknown codec";
}

}  // namespace

void SmashedChannel::validate(int64_t n_layers) const {
  if (cut_layer < 1 || cut_layer >= n_layers) {
    throw std::invalid_argument("split.cut_layer must be in [1, " + std::to_string(n_layers - 1) +
                                "] for this model's " + std::to_string(n_layers) + " blocks, got " +
                                std::to_string(cut_layer));
  }
  protection.validate("split.");
}

std::string SmashedChannel::describe() const {
  return "cut_layer " + std::to_string(cut_layer) + ", codec " + codec_flag_name(codec) + ", protection " +
         protection.describe();
}

at::Tensor through_codec(const at::Tensor& x, wire::WireDType codec) {
  return split::from_wire(split::to_wire(x, codec), x.sizes().vec(), "smashed activations");
}

std::vector<at::Tensor> bottom_activations(const LlamaModel& model, const LinearAdapters* adapters,
                                           const std::vector<TokenRow>& rows, int64_t cut_layer) {
  at::NoGradGuard no_grad;
  // Row indices by length: each length is one batch, no padding to mask.
  std::map<size_t, std::vector<size_t>> by_length;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].empty())
      throw std::invalid_argument("bottom_activations: row " + std::to_string(i) + " is empty");
    by_length[rows[i].size()].push_back(i);
  }
  std::vector<at::Tensor> out(rows.size());
  for (const auto& [length, members] : by_length) {
    std::vector<int64_t> ids;
    ids.reserve(members.size() * length);
    for (size_t i : members) ids.insert(ids.end(), rows[i].begin(), rows[i].end());
    const at::Tensor tokens =
        at::tensor(ids, at::kLong).view({static_cast<int64_t>(members.size()), static_cast<int64_t>(length)});
    const at::Tensor smashed = model.run_blocks(model.embed(tokens), 0, cut_layer, adapters)
                                   .to(at::kCPU, at::kFloat);  // [B, T, dim]
    for (size_t b = 0; b < members.size(); ++b)
      out[members[b]] = smashed[static_cast<int64_t>(b)].contiguous();
  }
  return out;
}

SiteSender::SiteSender(const SmashedChannel& channel)
    : codec_(channel.codec), protector_(channel.protection) {}

at::Tensor SiteSender::send(const at::Tensor& smashed) {
  at::NoGradGuard no_grad;
  return through_codec(protector_.apply(smashed), codec_);
}

CandidateView::CandidateView(const SmashedChannel& channel)
    : codec_(channel.codec), clip_(clip_only(channel.protection)) {}

at::Tensor CandidateView::operator()(const at::Tensor& activations) {
  at::NoGradGuard no_grad;
  return through_codec(clip_.apply(activations), codec_);
}

}  // namespace cleave::audit
