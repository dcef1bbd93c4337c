// split.activation_clip / activation_noise: what a site does to its smashed
// activations before they leave it, checked against the formulas written out
// here (clip: x * min(1, C / |x|) per token; noise: N(0, (noise C)^2)).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "split/smashed_protection.h"

namespace cleave::split {
namespace {

at::Tensor random_smashed(uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({2, 5, 16}, gen) * 3.0;   // [B, T, dim], token norms around 12
}

TEST(SmashedProtection, OffReturnsTheActivationsThemselves) {
  SmashedProtector protector(SmashedProtection{});
  const at::Tensor x = random_smashed(1);
  EXPECT_TRUE(protector.apply(x).is_same(x));
}

TEST(SmashedProtection, ClipBoundsEachTokenAndLeavesShortOnesAlone) {
  const at::Tensor x = random_smashed(2);
  const at::Tensor norms = x.norm(2, {-1});   // [B, T]
  const double clip = norms.median().item<double>();
  SmashedProtector protector(SmashedProtection{clip, 0, 1});
  const at::Tensor y = protector.apply(x);
  const at::Tensor y_norms = y.norm(2, {-1});
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 5; ++t) {
      const double n = norms[b][t].item<double>();
      if (n <= clip) {
        EXPECT_TRUE(at::allclose(y[b][t], x[b][t])) << b << "," << t;
      } else {
        EXPECT_NEAR(y_norms[b][t].item<double>(), clip, 1e-4 * clip) << b << "," << t;
        // Same direction: only the length changes.
        EXPECT_TRUE(at::allclose(y[b][t] * (n / clip), x[b][t], 1e-4, 1e-4)) << b << "," << t;
      }
    }
  }
}

TEST(SmashedProtection, GradientGoesThroughTheClip) {
  // d/dx of C x / |x| applied to g: (C / |x|) (g - u (u . g)), u = x / |x|.
  const at::Tensor x = random_smashed(3).requires_grad_(true);
  const at::Tensor g = random_smashed(4);
  const double clip = 1.0;   // every token is longer: all are clipped
  SmashedProtector protector(SmashedProtection{clip, 0, 1});
  protector.apply(x).backward(g);
  const at::Tensor xd = x.detach();
  const at::Tensor norm = xd.norm(2, {-1}, true);
  const at::Tensor u = xd / norm;
  const at::Tensor expected = (clip / norm) * (g - u * (u * g).sum(-1, true));
  EXPECT_TRUE(at::allclose(x.grad(), expected, 1e-4, 1e-5)) << (x.grad() - expected).abs().max();
}

TEST(SmashedProtection, NoiseHasTheStatedScaleAndASeedRepeatsIt) {
  const at::Tensor x = at::zeros({4, 64, 64});   // zero activations: what comes out is the noise
  const double clip = 2.0, noise = 0.5;
  SmashedProtector a(SmashedProtection{clip, noise, 42}), b(SmashedProtection{clip, noise, 42}),
      c(SmashedProtection{clip, noise, 43});
  const at::Tensor na = a.apply(x), nb = b.apply(x), nc = c.apply(x);
  EXPECT_NEAR(na.std().item<double>(), noise * clip, 0.02 * noise * clip);
  EXPECT_NEAR(na.mean().item<double>(), 0.0, 0.02);
  EXPECT_TRUE(at::equal(na, nb));
  EXPECT_FALSE(at::equal(na, nc));
  // A second step draws fresh noise.
  EXPECT_FALSE(at::equal(a.apply(x), na));
}

TEST(SmashedProtection, BadValuesNameTheKey) {
  auto message = [](SmashedProtection p) {
    try {
      p.validate("split.");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({-1, 0, 0}).find("split.activation_clip must be >= 0"), std::string::npos);
  EXPECT_NE(message({NAN, 0, 0}).find("split.activation_clip"), std::string::npos);
  EXPECT_NE(message({1, -0.5, 0}).find("split.activation_noise must be in [0, 1000]"), std::string::npos);
  EXPECT_NE(message({0, 0.5, 0}).find("needs split.activation_clip > 0"), std::string::npos);
  EXPECT_EQ(message({1, 0.5, 0}), "");
}

}  // namespace
}  // namespace cleave::split
