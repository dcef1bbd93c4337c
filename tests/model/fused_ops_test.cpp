// The fused RMSNorm, SwiGLU and RoPE kernels against their eager forms
// evaluated in float64: outputs and input gradients.
// Tolerance: 1e-5 absolute + 1e-5 relative per element (float32 kernels,
// polynomial exp in SwiGLU; observed errors are around 1e-7).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include "model/attention.h"
#include "model/cpu_kernels.h"
#include "model/fused_ops.h"
#include "model/llama_model.h"

namespace cleave {
namespace {

void expect_close(const at::Tensor& actual, const at::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const at::Tensor a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  const double excess = ((a - e).abs() - (1e-5 + 1e-5 * e.abs())).max().item<double>();
  EXPECT_LE(excess, 0.0) << what << ": largest difference " << (a - e).abs().max().item<double>();
}

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Runs `fused` in float32 and `reference` in float64 on the same inputs and
// upstream gradient; compares outputs and every input's gradient.
void compare(const std::vector<at::Tensor>& inputs, const Op& fused, const Op& reference) {
  auto run = [&](const Op& op, at::ScalarType dtype) {
    std::vector<at::Tensor> xs;
    for (const at::Tensor& x : inputs) xs.push_back(x.to(dtype).detach().requires_grad_());
    at::Tensor out = op(xs);
    at::manual_seed(99);
    out.backward(at::randn(out.sizes()).to(dtype));
    std::vector<at::Tensor> results = {out.detach()};
    for (const at::Tensor& x : xs) results.push_back(x.grad());
    return results;
  };
  const auto f = run(fused, at::kFloat);
  const auto r = run(reference, at::kDouble);
  expect_close(f[0], r[0], "output");
  for (size_t i = 1; i < f.size(); ++i) expect_close(f[i], r[i], "input gradient");
}

TEST(FusedOps, RmsNormMatchesEagerFloat64) {
  at::manual_seed(1);
  const at::Tensor weight = at::rand({48}) + 0.5;
  for (auto shape : {std::vector<int64_t>{3, 5, 48}, std::vector<int64_t>{1, 1, 48}}) {
    compare({at::randn(shape) * 3},
            [&](const std::vector<at::Tensor>& x) { return fused_rms_norm(x[0], weight, 1e-5); },
            [&](const std::vector<at::Tensor>& x) {
              return x[0] * at::rsqrt(x[0].pow(2).mean(-1, true) + 1e-5) * weight.to(at::kDouble);
            });
  }
}

TEST(FusedOps, RmsNormDispatch) {
  at::manual_seed(2);
  at::Tensor x = at::randn({2, 3, 16}), w = at::rand({16});
  EXPECT_TRUE(at::allclose(rms_norm(x, w, 1e-6), fused_rms_norm(x, w, 1e-6)));
  // a trainable weight takes the eager path, which differentiates the weight too
  at::Tensor tw = w.clone().requires_grad_();
  rms_norm(x, tw, 1e-6).sum().backward();
  EXPECT_TRUE(tw.grad().defined());
}

// Both copies of the loops: the AVX-512 one where the CPU has it, and the
// generic one (kernels::generic_only, as the attention tests do).
TEST(FusedOps, SwiGluMatchesEagerFloat64) {
  for (const bool generic : {false, true}) {
    SCOPED_TRACE(generic ? "generic" : "widest the CPU runs");
    kernels::generic_only() = generic;
    at::manual_seed(3);
    compare({at::randn({4, 7, 33}) * 4, at::randn({4, 7, 33})},
            [](const std::vector<at::Tensor>& x) { return fused_swiglu(x[0], x[1]); },
            [](const std::vector<at::Tensor>& x) { return at::silu(x[0]) * x[1]; });
  }
  kernels::generic_only() = false;
}

TEST(FusedOps, RopeMatchesEagerFloat64InBothStylesAndPartialRotation) {
  at::manual_seed(4);
  for (RopeStyle style : {RopeStyle::adjacent_pairs, RopeStyle::halves}) {
    for (int64_t rope_dims : {int64_t{16}, int64_t{10}}) {
      for (int64_t pos0 : {int64_t{0}, int64_t{37}}) {
        compare({at::randn({2, 9, 3, 16})},
                [&](const std::vector<at::Tensor>& x) {
                  return fused_rope(x[0], pos0, rope_dims, 10000.0, style);
                },
                [&](const std::vector<at::Tensor>& x) {
                  return apply_rope_naive(x[0], pos0, rope_dims, 10000.0, style);
                });
      }
    }
  }
}

TEST(FusedOps, RopeAcceptsANonContiguousView) {
  at::manual_seed(5);
  at::Tensor base = at::randn({2, 6, 4, 8});
  at::Tensor view = base.transpose(1, 2).contiguous().transpose(1, 2);  // [2, 6, 4, 8], strided
  ASSERT_FALSE(view.is_contiguous());
  EXPECT_TRUE(at::allclose(fused_rope(view, 3, 8, 500.0, RopeStyle::adjacent_pairs),
                           apply_rope_naive(base, 3, 8, 500.0, RopeStyle::adjacent_pairs), 1e-6,
                           1e-6));
}

}  // namespace
}  // namespace cleave
