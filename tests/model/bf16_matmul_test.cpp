// bf16 products with a float32 result (model/bf16_matmul.h) against the
// product of the same bf16-rounded operands in float64. With oneDNN on a CPU
// with native bf16 the result is accumulated and written in float32, so it
// agrees to float32 rounding (bound 1e-5 relative to the largest entry);
// elsewhere it is at::mm's result rounded to bf16 (bound 8e-3, bf16's half
// ulp with room). Either way a product of the wrong operands, layout or
// accumulation fails.
#include "model/bf16_matmul.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/cpu_matmul.h"
#include "model/int8_matmul.h"

namespace cleave {
namespace {

double bound() { return int8_products_built() && cpu_has_native_bf16() ? 1e-5 : 8e-3; }

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return (actual.to(at::kDouble) - expected).abs().max().item<double>() /
         std::max(expected.abs().max().item<double>(), 1e-30);
}

at::Tensor random_bf16(std::vector<int64_t> sizes, uint64_t seed) {
  return at::randn(sizes, at::make_generator<at::CPUGeneratorImpl>(seed)).to(at::kBFloat16);
}

TEST(Bf16Product, NtMatchesFloat64OfTheRoundedOperands) {
  const at::Tensor a = random_bf16({37, 96}, 1), b = random_bf16({50, 96}, 2);  // [M, K], [N, K]
  at::Tensor out = at::empty({37, 50});
  bf16_product_nt(a, b, out);
  EXPECT_LT(relative_error(out, at::mm(a.to(at::kDouble), b.to(at::kDouble).t())), bound());
}

TEST(Bf16Product, NnMatchesFloat64OfTheRoundedOperands) {
  const at::Tensor a = random_bf16({29, 64}, 3), b = random_bf16({64, 40}, 4);  // [M, N], [N, K]
  at::Tensor out = at::empty({29, 40});
  bf16_product_nn(a, b, out);
  EXPECT_LT(relative_error(out, at::mm(a.to(at::kDouble), b.to(at::kDouble))), bound());
}

TEST(Bf16Product, WritesIntoAStridedSliceAndLeavesTheRestAlone) {
  const at::Tensor a = random_bf16({8, 32}, 5), b = random_bf16({12, 32}, 6);
  at::Tensor logits = at::full({8, 30}, 7.0f);
  at::Tensor columns = logits.narrow(1, 10, 12);  // [8, 12], row stride 30
  bf16_product_nt(a, b, columns);
  EXPECT_LT(relative_error(columns, at::mm(a.to(at::kDouble), b.to(at::kDouble).t())), bound());
  EXPECT_TRUE(logits.narrow(1, 0, 10).eq(7.0f).all().item<bool>());
  EXPECT_TRUE(logits.narrow(1, 22, 8).eq(7.0f).all().item<bool>());
}

TEST(Bf16Product, AccumulateAddsToWhatOutHolds) {
  const at::Tensor a = random_bf16({16, 48}, 7), b = random_bf16({48, 24}, 8);
  const at::Tensor start = at::randn({16, 24}, at::make_generator<at::CPUGeneratorImpl>(9));
  at::Tensor out = start.clone();
  bf16_product_nn(a, b, out, /*accumulate=*/true);
  const at::Tensor expected = start.to(at::kDouble) + at::mm(a.to(at::kDouble), b.to(at::kDouble));
  EXPECT_LT(relative_error(out, expected), bound());
}

TEST(Bf16Product, RefusesMismatchedShapesAndDtypesNamingThem) {
  const at::Tensor a = random_bf16({4, 8}, 10), b = random_bf16({5, 9}, 11);
  at::Tensor out = at::empty({4, 5});
  try {
    bf16_product_nt(a, b, out);
    FAIL() << "mismatched inner sizes were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("9 columns"), std::string::npos) << e.what();
  }
  at::Tensor float_a = at::randn({4, 9});
  EXPECT_THROW(bf16_product_nt(float_a, b, out), std::invalid_argument);
}

}  // namespace
}  // namespace cleave
