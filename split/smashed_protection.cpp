#include "split/smashed_protection.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace cleave::split {

void SmashedProtection::validate(const std::string& prefix) const {
  if (!(std::isfinite(clip) && clip >= 0)) {
    throw std::invalid_argument(prefix + "activation_clip must be >= 0 (0: off; a per-token L2 bound), got " +
                                std::to_string(clip));
  }
  if (!(std::isfinite(noise) && noise >= 0 && noise <= 1000)) {
    throw std::invalid_argument(prefix + "activation_noise must be in [0, 1000] (a multiple of the clip), got " +
                                std::to_string(noise));
  }
  if (noise > 0 && clip == 0) {
    throw std::invalid_argument(prefix + "activation_noise " + std::to_string(noise) + " needs " + prefix +
                                "activation_clip > 0: the noise's scale is noise x clip");
  }
}

std::string SmashedProtection::describe() const {
  if (!enabled()) return "off";
  char text[96];
  std::snprintf(text, sizeof text, "per-token L2 clip %g, Gaussian noise %g x clip", clip, noise);
  return text;
}

struct SmashedProtector::Generator {
  at::Generator cpu;
};

SmashedProtector::SmashedProtector(SmashedProtection options) : options_(options) {
  options_.validate();
  uint64_t seed = options_.noise_seed;
  if (seed == 0) {
    std::random_device entropy;
    seed = (static_cast<uint64_t>(entropy()) << 32) ^ entropy();
  }
  generator_ = std::make_unique<Generator>(Generator{at::detail::createCPUGenerator(seed)});
}

SmashedProtector::~SmashedProtector() = default;

at::Tensor SmashedProtector::apply(const at::Tensor& smashed) {
  if (!options_.enabled()) return smashed;
  // [B, T, 1]: scale each token's vector down to the clip, never up.
  const at::Tensor norm = smashed.norm(2, {-1}, /*keepdim=*/true);
  const at::Tensor scale = at::clamp_max(options_.clip / (norm + 1e-12), 1.0);
  at::Tensor clipped = smashed * scale;
  if (options_.noise == 0) return clipped;
  at::Tensor noise = at::empty(smashed.sizes(), smashed.options().device(at::kCPU).dtype(at::kFloat)
                                                    .requires_grad(false));
  noise.normal_(0.0, options_.noise * options_.clip, generator_->cpu);
  return clipped + noise.to(smashed.device(), smashed.scalar_type());
}

}  // namespace cleave::split
