// The CPU bf16 matmuls of the frozen base (model/cpu_matmul.h): names, the
// bf16 dequantization of every storage, and the forward, input gradient and
// chunked loss in bf16 against float32 (close, but not the float32 result:
// the bf16 path really ran).
#include "model/cpu_matmul.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "model/attention.h"
#include "model/compute.h"
#include "model/frozen_linear.h"
#include "model/int8_matmul.h"
#include "model/loss.h"
#include "tests/support/cpu_matmul_scope.h"

namespace cleave {
namespace {

using test::CpuMatmulScope;
using test::random_tensor;

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return (actual - expected).abs().max().item<double>() /
         std::max(expected.abs().max().item<double>(), 1e-30);
}

TEST(CpuMatmul, NamesResolveAndAutoFollowsTheCpu) {
  EXPECT_EQ(cpu_matmul(), CpuMatmul::float32);  // the default
  EXPECT_EQ(resolve_cpu_matmul("float32"), CpuMatmul::float32);
  EXPECT_EQ(resolve_cpu_matmul("bf16"), CpuMatmul::bf16);
  if (int8_products_built()) {
    EXPECT_EQ(resolve_cpu_matmul("int8"), CpuMatmul::int8);
    EXPECT_NE(describe_cpu_matmul("int8").find("int8 on int8 weights"), std::string::npos)
        << describe_cpu_matmul("int8");
  } else {
    EXPECT_THROW(resolve_cpu_matmul("int8"), std::invalid_argument);
  }
  EXPECT_EQ(resolve_cpu_matmul("auto"),
            cpu_has_native_bf16() ? CpuMatmul::bf16 : CpuMatmul::float32);
  try {
    resolve_cpu_matmul("fp8");
    FAIL() << "fp8 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'fp8'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("auto, float32, bf16"), std::string::npos) << e.what();
  }
  EXPECT_NE(describe_cpu_matmul("auto").find("auto:"), std::string::npos);
}

TEST(CpuMatmul, ComputeOptionsRefuseAnUnknownMatmul) {
  ComputeOptions compute;
  EXPECT_EQ(compute.matmul, "float32");
  compute.matmul = "fast";
  try {
    compute.validate();
    FAIL() << "runtime.matmul fast accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("runtime.matmul"), std::string::npos) << e.what();
  }
}

TEST(CpuMatmul, Bf16DequantizationIsTheFloatOneRounded) {
  // 100 inputs: q4's last block is partial.
  const at::Tensor w = random_tensor({24, 100}, 1);
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    const FrozenWeight fw = FrozenWeight::from_float(w, quant);
    const at::Tensor rows = fw.dequantize_rows_bf16(5, 7);  // [7, 100]
    EXPECT_EQ(rows.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(at::equal(rows, fw.dequantize_rows(5, 7).to(at::kBFloat16)));
    EXPECT_TRUE(at::equal(fw.dequantize_bf16(), fw.dequantize().to(at::kBFloat16)));
  }
  const FrozenWeight fw = FrozenWeight::from_float(w, BaseQuant::q4);
  EXPECT_THROW(fw.dequantize_rows_bf16(20, 5), std::out_of_range);
}

TEST(CpuMatmul, Bf16ForwardAndInputGradientAreCloseToFloat32) {
  const at::Tensor w = random_tensor({320, 256}, 2);
  const at::Tensor x0 = random_tensor({3, 5, 256}, 3);
  const at::Tensor upstream = random_tensor({3, 5, 320}, 4);
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    const FrozenWeight fw = FrozenWeight::from_float(w, quant);
    auto run = [&](CpuMatmul matmul) {
      CpuMatmulScope scope(matmul);
      at::Tensor x = x0.clone().requires_grad_(true);
      at::Tensor y = frozen_matmul(x, fw);  // [3, 5, 320]
      (y * upstream).sum().backward();
      return std::make_pair(y.detach(), x.grad());
    };
    const auto [y32, g32] = run(CpuMatmul::float32);
    const auto [y16, g16] = run(CpuMatmul::bf16);
    EXPECT_EQ(y16.scalar_type(), at::kFloat);
    EXPECT_EQ(g16.scalar_type(), at::kFloat);
    // bf16 keeps 8 significant bits: operands and result are rounded.
    EXPECT_LT(relative_error(y16, y32), 2e-2);
    EXPECT_LT(relative_error(g16, g32), 2e-2);
    EXPECT_FALSE(at::equal(y16, y32)) << "the bf16 path did not run";
  }
}

TEST(CpuMatmul, WideHeadAttentionRunsItsProductsInBf16) {
  // d = 64 with small scores: the naive (BLAS) form, whose products follow the mode.
  const at::Tensor q0 = random_tensor({2, 16, 4, 64}, 10);  // [B, T, Hq, d]
  const at::Tensor k0 = random_tensor({2, 16, 2, 64}, 11);  // [B, S, Hkv, d]
  const at::Tensor v0 = random_tensor({2, 16, 2, 64}, 12);
  const at::Tensor upstream = random_tensor({2, 16, 4, 64}, 13);
  auto run = [&](CpuMatmul matmul) {
    CpuMatmulScope scope(matmul);
    at::Tensor q = q0.clone().requires_grad_(true);
    at::Tensor out = causal_attention(q, k0, v0);
    (out * upstream).sum().backward();
    return std::make_pair(out.detach(), q.grad());
  };
  const auto [out32, g32] = run(CpuMatmul::float32);
  const auto [out16, g16] = run(CpuMatmul::bf16);
  EXPECT_EQ(out16.scalar_type(), at::kFloat);
  EXPECT_LT(relative_error(out16, out32), 3e-2);
  EXPECT_LT(relative_error(g16, g32), 5e-2);
  EXPECT_FALSE(at::equal(out16, out32)) << "the bf16 products did not run";
}

// The head's logits and input gradient in bf16, and with an int8 head in
// int8 mode (int8 logits; its input gradient stays bf16, model/chunked_loss.cpp
// says why), against float32: the bounds hold for both.
TEST(CpuMatmul, ReducedPrecisionChunkedLossIsCloseToFloat32ForFloatAndQuantizedHeads) {
  // 4100 rows: a quantized head is walked in more than one vocabulary slice.
  const int64_t vocab = 4100, dim = 32;
  const at::Tensor hidden0 = random_tensor({2, 6, dim}, 5);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(6);
  const at::Tensor targets = at::randint(vocab, {2, 6}, gen, at::kLong);
  const at::Tensor weights = at::ones({2, 6});
  std::vector<std::pair<BaseQuant, CpuMatmul>> cases = {{BaseQuant::none, CpuMatmul::bf16},
                                                        {BaseQuant::q4, CpuMatmul::bf16}};
  if (int8_products_built()) cases.emplace_back(BaseQuant::int8, CpuMatmul::int8);
  for (const auto& [quant, matmul] : cases) {
    SCOPED_TRACE(std::string(to_string(quant)) + " head, " + to_string(matmul) + " matmuls");
    FrozenLinear output;
    output.name = "output.weight";
    output.weight = FrozenWeight::from_float(random_tensor({vocab, dim}, 7) * 0.3, quant);
    auto run = [&](CpuMatmul mode) {
      CpuMatmulScope scope(mode);
      at::Tensor hidden = hidden0.clone().requires_grad_(true);
      LossResult r = chunked_cross_entropy(hidden, output, targets, weights, 5);
      r.loss.backward();
      return std::make_pair(r.nll_sum, hidden.grad());
    };
    const auto [nll32, g32] = run(CpuMatmul::float32);
    const auto [nll_reduced, g_reduced] = run(matmul);
    EXPECT_NEAR(nll_reduced, nll32, 1e-2 * std::abs(nll32));
    EXPECT_LT(relative_error(g_reduced, g32), 3e-2);
    EXPECT_NE(nll_reduced, nll32) << "the reduced-precision path did not run";
  }
}

}  // namespace
}  // namespace cleave
