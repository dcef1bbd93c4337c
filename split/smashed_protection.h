// What a site may do to its smashed activations before they leave it
// (split.activation_clip, split.activation_noise): clip each token's
// activation vector to an L2 norm of at most `clip`, then add Gaussian noise
// of standard deviation `noise * clip` to every element. Applied at the site,
// before the codec, in every split mode; the gradient that comes back is
// taken through the clipping (the noise is a constant of the step).
//
// This limits what one token's activation can reveal to an honest-but-curious
// split server (`cleave audit` measures how much); it is not a formal
// differential-privacy guarantee for the site's text: the same text passes
// the cut once per step, and the split server's gradients go back unnoised.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cleave::split {

struct SmashedProtection {
  double clip = 0;         // per-token L2 bound; 0: no clipping
  double noise = 0;        // Gaussian std relative to clip; needs clip > 0
  uint64_t noise_seed = 0; // 0: the noise is seeded from the OS's entropy

  bool enabled() const { return clip > 0; }
  // Throws std::invalid_argument naming `prefix` + "activation_clip" / "activation_noise".
  void validate(const std::string& prefix = "split.") const;
  std::string describe() const;   // "clip 8, noise 0.5 x clip" or "off"
};

// Applies the protection to `smashed` [B, T, dim] (float, any device):
// differentiable through the clipping. Returns `smashed` itself when off.
class SmashedProtector {
 public:
  explicit SmashedProtector(SmashedProtection options);
  ~SmashedProtector();
  at::Tensor apply(const at::Tensor& smashed);   // [B, T, dim] -> [B, T, dim]
  const SmashedProtection& options() const { return options_; }

 private:
  struct Generator;
  SmashedProtection options_;
  std::unique_ptr<Generator> generator_;
};

}  // namespace cleave::split
