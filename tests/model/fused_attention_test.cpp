// The fused causal attention kernel against the naive form evaluated in
// float64: outputs and the gradients of q, k and v.
// Tolerance: 2e-5 absolute + 2e-5 relative per element (float32 kernel with
// a polynomial exp vs. float64 math; observed errors are around 1e-6).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/attention.h"
#include "model/cpu_kernels.h"
#include "model/fused_attention.h"

namespace cleave {
namespace {

struct Shape {
  int64_t B, T, S, Hq, Hkv, d;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "B" << s.B << " T" << s.T << " S" << s.S << " Hq" << s.Hq << " Hkv" << s.Hkv << " d"
      << s.d;
}

// Runs each shape with the AVX2+FMA kernels (where the CPU has them) and with
// the generic ones.
class FusedAttention : public ::testing::TestWithParam<std::tuple<Shape, bool>> {
 protected:
  void SetUp() override { kernels::generic_only() = std::get<1>(GetParam()); }
  void TearDown() override { kernels::generic_only() = false; }
};

void expect_close(const at::Tensor& actual, const at::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const at::Tensor a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  const double excess = ((a - e).abs() - (2e-5 + 2e-5 * e.abs())).max().item<double>();
  EXPECT_LE(excess, 0.0) << what << ": largest difference "
                         << (a - e).abs().max().item<double>();
}

TEST_P(FusedAttention, MatchesNaiveFloat64InOutputAndGradients) {
  const Shape s = std::get<0>(GetParam());
  at::manual_seed(11);
  at::Tensor q = at::randn({s.B, s.T, s.Hq, s.d});
  at::Tensor k = at::randn({s.B, s.S, s.Hkv, s.d});
  at::Tensor v = at::randn({s.B, s.S, s.Hkv, s.d});
  at::Tensor grad = at::randn({s.B, s.T, s.Hq, s.d});

  auto run = [&](bool fused, at::ScalarType dtype) {
    at::Tensor qq = q.to(dtype).detach().requires_grad_(),
               kk = k.to(dtype).detach().requires_grad_(),
               vv = v.to(dtype).detach().requires_grad_();
    at::Tensor out = fused ? fused_causal_attention(qq, kk, vv) : causal_attention_naive(qq, kk, vv);
    out.backward(grad.to(dtype));
    return std::vector<at::Tensor>{out.detach(), qq.grad(), kk.grad(), vv.grad()};
  };
  const auto fused = run(true, at::kFloat);
  const auto reference = run(false, at::kDouble);
  expect_close(fused[0], reference[0], "output");
  expect_close(fused[1], reference[1], "grad q");
  expect_close(fused[2], reference[2], "grad k");
  expect_close(fused[3], reference[3], "grad v");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttention,
    ::testing::Combine(::testing::Values(Shape{2, 16, 16, 4, 4, 8},     // multi-head, full tiles
                      Shape{2, 37, 37, 8, 2, 16},    // GQA (4 per kv head), odd T
                      Shape{1, 1, 1, 2, 1, 8},       // T = 1
                      Shape{3, 1, 9, 4, 2, 8},       // one query over a cache of 9 keys
                      Shape{1, 5, 12, 6, 3, 12},     // S > T, d not a multiple of 8
                      Shape{2, 50, 50, 4, 1, 64},    // all heads share one kv head, d 64
                      Shape{1, 33, 33, 2, 2, 5},     // odd d
                      Shape{2, 29, 31, 8, 4, 8},     // d 8 (its own AVX-512 tiles), odd n
                      Shape{1, 70, 75, 4, 2, 8}),    // d 8 over several 16-key blocks and a tail
                       ::testing::Bool()));

TEST(CausalAttention, DispatchesFloatToTheFusedKernelAndDoubleToNaive) {
  at::manual_seed(3);
  at::Tensor q = at::randn({1, 6, 4, 8}), k = at::randn({1, 6, 2, 8}), v = at::randn({1, 6, 2, 8});
  EXPECT_TRUE(at::allclose(causal_attention(q, k, v), fused_causal_attention(q, k, v)));
  at::Tensor qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble);
  EXPECT_TRUE(at::equal(causal_attention(qd, kd, vd), causal_attention_naive(qd, kd, vd)));
}

TEST(CausalAttention, WideHeadsWithSmallScoresUseBlasAndTheRestTheFusedKernel) {
  // Narrow heads: the fused kernel whatever the size (stories260K: d 8).
  EXPECT_TRUE(fused_attention_pays_off(32, 8, 256, 256, 8));
  EXPECT_TRUE(fused_attention_pays_off(1, 1, 4, 4, 31));
  // Wide heads with small scores: sgemm (llama-110M at 4 x 256: 12.6 MB of scores).
  EXPECT_FALSE(fused_attention_pays_off(4, 12, 256, 256, 64));
  EXPECT_FALSE(fused_attention_pays_off(1, 1, 4, 4, 32));
  // Wide heads whose scores pass the budget: the fused kernel (no [T, S] scores).
  EXPECT_TRUE(fused_attention_pays_off(8, 32, 1024, 1024, 128));  // 1 GiB of scores
  const int64_t at_budget = kMaxMaterialisedScoresBytes / 4;      // scores of exactly the budget
  EXPECT_FALSE(fused_attention_pays_off(1, 1, 1, at_budget, 64));
  EXPECT_TRUE(fused_attention_pays_off(1, 1, 1, at_budget + 1, 64));
}

TEST(CausalAttention, WideHeadsGiveTheFusedKernelsResult) {
  at::manual_seed(4);
  // [1, 9, 4, 64] against [1, 9, 2, 64]: d 64 takes the BLAS path.
  at::Tensor q = at::randn({1, 9, 4, 64}), k = at::randn({1, 9, 2, 64}), v = at::randn({1, 9, 2, 64});
  ASSERT_FALSE(fused_attention_pays_off(1, 4, 9, 9, 64));
  EXPECT_TRUE(at::allclose(causal_attention(q, k, v), fused_causal_attention(q, k, v), 1e-5, 1e-5));
}

TEST(CausalAttention, AForcedFormOverridesTheDispatch) {
  at::manual_seed(6);
  at::Tensor q = at::randn({1, 9, 4, 64}), k = at::randn({1, 9, 2, 64}), v = at::randn({1, 9, 2, 64});
  set_cpu_attention_form(CpuAttentionForm::fused);  // d 64 would take the BLAS form
  EXPECT_TRUE(at::equal(causal_attention(q, k, v), fused_causal_attention(q, k, v)));
  at::Tensor qn = q.narrow(3, 0, 8).contiguous(), kn = k.narrow(3, 0, 8).contiguous(),
             vn = v.narrow(3, 0, 8).contiguous();
  set_cpu_attention_form(CpuAttentionForm::blas);  // d 8 would take the fused kernel
  EXPECT_TRUE(at::equal(causal_attention(qn, kn, vn), causal_attention_naive(qn, kn, vn)));
  set_cpu_attention_form(CpuAttentionForm::automatic);
  EXPECT_TRUE(at::equal(causal_attention(qn, kn, vn), fused_causal_attention(qn, kn, vn)));
  EXPECT_EQ(parse_cpu_attention_form("blas"), CpuAttentionForm::blas);
  EXPECT_THROW(parse_cpu_attention_form("flash"), std::invalid_argument);
}

TEST(CausalAttention, FusedRefusesMismatchedHeads) {
  at::Tensor q = at::randn({1, 4, 3, 8}), k = at::randn({1, 4, 2, 8});
  EXPECT_THROW(fused_causal_attention(q, k, k), c10::Error);
}

TEST(CausalAttention, FirstQueryAttendsOnlyToTheFirstKey) {
  at::manual_seed(5);
  at::Tensor q = at::randn({1, 7, 2, 8}), k = at::randn({1, 7, 1, 8}), v = at::randn({1, 7, 1, 8});
  at::Tensor out = fused_causal_attention(q, k, v);  // [1, 7, 2, 8]
  EXPECT_TRUE(at::allclose(out[0][0][0], v[0][0][0], 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(out[0][0][1], v[0][0][0], 1e-6, 1e-6));
}

}  // namespace
}  // namespace cleave
