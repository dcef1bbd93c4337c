#include "model/frozen_weight.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/frozen_linear.h"

namespace cleave {
namespace {

at::Tensor random_weight(int64_t out, int64_t in, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({out, in}, gen, at::kFloat);
}

TEST(FrozenWeight, FloatKeepsTheTensorWithoutCopy) {
  at::Tensor w = random_weight(8, 16, 1);
  FrozenWeight fw = FrozenWeight::from_float(w, BaseQuant::none);
  EXPECT_TRUE(fw.is_float());
  EXPECT_EQ(fw.dequantize().data_ptr(), w.data_ptr());
  EXPECT_EQ(fw.bytes(), 8 * 16 * 4);
}

TEST(FrozenWeight, Int8ErrorWithinHalfAStepPerRow) {
  at::Tensor w = random_weight(32, 100, 2);
  FrozenWeight fw = FrozenWeight::from_float(w, BaseQuant::int8);
  at::Tensor step = w.abs().amax(1, true) / 127.0;  // [out, 1]
  at::Tensor err = (fw.dequantize() - w).abs();
  EXPECT_TRUE((err <= step * 0.5 + 1e-6).all().item<bool>());
  EXPECT_EQ(fw.bytes(), 32 * 100 + 32 * 4);
}

TEST(FrozenWeight, Q4ErrorWithinOneStepPerBlockAndPadsOddWidths) {
  // 172 inputs: not a multiple of the 32-wide block (stories260K's ffn_down).
  at::Tensor w = random_weight(16, 172, 3);
  FrozenWeight fw = FrozenWeight::from_float(w, BaseQuant::q4);
  at::Tensor deq = fw.dequantize();
  ASSERT_EQ(deq.sizes(), w.sizes());
  at::Tensor padded = at::zeros({16, 192});
  padded.narrow(1, 0, 172).copy_(w);
  // |d| = amax / 8 per block; values of the sign opposite to the block's
  // extreme clamp at 7 |d|, so the error bound is one step, not half.
  at::Tensor step = padded.view({16, 6, 32}).abs().amax(2, true) / 8.0;
  at::Tensor padded_deq = at::zeros({16, 192});
  padded_deq.narrow(1, 0, 172).copy_(deq);
  at::Tensor err = (padded_deq - padded).abs().view({16, 6, 32});
  EXPECT_TRUE((err <= step + 1e-6).all().item<bool>());
  EXPECT_LT(fw.bytes(), w.numel() * 4 / 5);
}

TEST(FrozenWeight, Int8CodesMatchTheTensorFormula) {
  // The quantizer loops row by row; the reference is the same rule in ATen
  // ops: scale = max(|x| / 127, 1e-12) per row, q = round-half-even(x / scale).
  at::Tensor w = random_weight(24, 70, 5);
  w[3].zero_();  // an all-zero row takes the minimum scale
  FrozenWeight fw = FrozenWeight::from_float(w, BaseQuant::int8);
  const at::Tensor scale = (w.abs().amax(1) / 127.0f).clamp_min(1e-12f);  // [out]
  const at::Tensor codes = (w / scale.unsqueeze(1)).round().clamp(-127, 127);  // [out, in]
  EXPECT_TRUE(at::equal(fw.dequantize(), codes * scale.unsqueeze(1)));
}

TEST(FrozenWeight, GatherRowsEqualsRowsOfTheDequantizedMatrix) {
  at::Tensor w = random_weight(50, 172, 6);
  const at::Tensor ids = at::tensor({3, 0, 49, 3, 17, 8}, at::kLong).view({2, 3});  // [2, 3]
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
    FrozenWeight fw = FrozenWeight::from_float(w, quant);
    const at::Tensor rows = fw.gather_rows(ids);  // [2, 3, 172]
    ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{2, 3, 172}));
    EXPECT_TRUE(at::equal(rows, at::embedding(fw.dequantize(), ids))) << to_string(quant);
  }
}

TEST(FrozenWeight, UnknownQuantNameIsRefusedWithTheValidOnes) {
  try {
    parse_base_quant("q3");
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("native, none, int8, q4"), std::string::npos);
  }
}

TEST(FrozenMatmul, GradientOfInputMatchesFloat64ForEveryStorage) {
  at::Tensor w = random_weight(24, 64, 4);
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
    FrozenWeight fw = FrozenWeight::from_float(w, quant);
    at::Tensor x = random_weight(5, 64, 5).requires_grad_(true);
    at::Tensor y = frozen_matmul(x, fw);
    at::Tensor upstream = random_weight(5, 24, 6);
    (y * upstream).sum().backward();
    // Reference in float64 with the dequantized weight as a plain constant.
    at::Tensor w64 = fw.dequantize().to(at::kDouble);
    at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_(true);
    (at::matmul(x64, w64.t()) * upstream.to(at::kDouble)).sum().backward();
    EXPECT_TRUE(at::allclose(x.grad().to(at::kDouble), x64.grad(), 1e-5, 1e-5)) << to_string(quant);
    EXPECT_TRUE(at::allclose(y.to(at::kDouble), at::matmul(x64, w64.t()), 1e-5, 1e-5));
  }
}

}  // namespace
}  // namespace cleave
