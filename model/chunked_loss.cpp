// Output projection and cross-entropy fused over chunks of rows (see
// chunked_cross_entropy in model/loss.h). The full [B*T, vocab] logits with
// their log-softmax and gradient were the largest tensors of a training step.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "model/bf16_matmul.h"
#include "model/frozen_linear.h"
#include "model/fused_ops.h"
#include "model/int8_matmul.h"
#include "model/loss.h"

namespace cleave {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// 16 MiB: the 110M q4 step's peak fell 30 MiB from 32 MiB chunks at the
// same speed; at 8 MiB the quantized head, dequantized again for every
// chunk, made it slower (BENCHMARKS.md, "Peak RSS").
constexpr int64_t kLogitsChunkBytes = int64_t{16} << 20;
// Vocabulary rows per product when the head goes slice by slice (quantized,
// or in bf16); a float32 head in float32 arithmetic is used whole.
constexpr int64_t kVocabSlice = 4096;

// The output projection as the chunks use it. With CPU bf16 matmuls
// (model/cpu_matmul.h) a float head is rounded to bf16 once per loss call and
// a quantized one slice by slice, like its float32 dequantization. With int8
// matmuls an int8 head multiplies its codes slice by slice in the forward
// product (x rounded to int8 once per call) and takes bf16 backward.
class Head {
 public:
  Head(const FrozenLinear& output, const at::Tensor& hidden)
      : output_(output), w_(output.weight), product_(frozen_product(hidden, w_)) {
    if (product_ == CpuMatmul::bf16 && w_.is_float()) whole_bf16_ = w_.dequantize_bf16();  // [vocab, dim]
  }

  // x: [R, dim] -> logits [R, vocab]. bf16 and int8 products fill the float
  // logits a vocabulary slice at a time (no [R, vocab] bf16 copy).
  at::Tensor project(const at::Tensor& x) const {
    at::Tensor logits;
    if (w_.is_float() && product_ == CpuMatmul::float32) {
      logits = at::mm(x, w_.dequantize().t());
    } else {
      const at::Tensor xs = product_ == CpuMatmul::bf16 ? x.to(at::kBFloat16).contiguous() : x;
      Int8Rows x_int8;
      if (product_ == CpuMatmul::int8) x_int8 = quantize_rows(x);
      const int64_t vocab = w_.out_features();
      logits = at::empty({x.size(0), vocab}, x.options());
      for (int64_t v0 = 0; v0 < vocab; v0 += kVocabSlice) {
        const int64_t n = std::min(kVocabSlice, vocab - v0);
        at::Tensor columns = logits.narrow(1, v0, n);  // [R, n], row stride vocab
        switch (product_) {
          case CpuMatmul::int8: int8_product_nt(x_int8, w_.int8_rows(v0, n), columns); break;
          case CpuMatmul::bf16: bf16_product_nt(xs, weight_rows(v0, n), columns); break;
          case CpuMatmul::float32: at::mm_out(columns, xs, weight_rows(v0, n).t()); break;
        }
      }
    }
    if (output_.bias.defined()) logits.add_(output_.bias);
    return logits;
  }

  // grad_logits: [R, vocab] -> grad_logits W: [R, dim]. In bf16 the
  // gradient is rounded a vocabulary slice at a time: a whole bf16 copy
  // would be half the logits chunk again. An int8 head takes this product
  // in bf16 too: a row of softmax - onehot is one entry near -1 and
  // thousands of probabilities below 1/127 of it, which int8 rounding per
  // row sets to zero (the input gradient came out 15% off in
  // tests/model/int8_matmul_test.cpp).
  at::Tensor project_back(const at::Tensor& grad_logits) const {
    if (w_.is_float() && product_ == CpuMatmul::float32) return at::mm(grad_logits, w_.dequantize());
    const int64_t vocab = w_.out_features();
    at::Tensor out = at::zeros({grad_logits.size(0), w_.in_features()}, grad_logits.options());
    for (int64_t v0 = 0; v0 < vocab; v0 += kVocabSlice) {
      const int64_t n = std::min(kVocabSlice, vocab - v0);
      const at::Tensor g = grad_logits.narrow(1, v0, n);  // [R, n]
      if (product_ == CpuMatmul::float32) {
        out.addmm_(g, weight_rows(v0, n));
      } else {
        bf16_product_nn(g.to(at::kBFloat16).contiguous(), weight_rows(v0, n), out, /*accumulate=*/true);
      }
    }
    return out;
  }

 private:
  // Vocabulary rows [v0, v0 + n) of the weight as the bf16 and float32
  // products take them: [n, dim], float in float32 mode, else bf16.
  at::Tensor weight_rows(int64_t v0, int64_t n) const {
    if (whole_bf16_.defined()) return whole_bf16_.narrow(0, v0, n);
    return product_ == CpuMatmul::float32 ? w_.dequantize_rows(v0, n) : w_.dequantize_rows_bf16(v0, n);
  }

  const FrozenLinear& output_;
  const FrozenWeight& w_;
  const CpuMatmul product_;
  at::Tensor whole_bf16_;  // [vocab, dim] bf16, for a float head in bf16 mode
};

struct ChunkedNll {
  double nll_sum = 0;
  at::Tensor grad_hidden;  // d(nll_sum)/d(hidden): [N, dim], or undefined
};

// hidden: [N, dim]; targets: [N] int64; scored_rows: [S] int64 (rows with weight > 0).
ChunkedNll chunked_nll(const at::Tensor& hidden, const FrozenLinear& output,
                       const at::Tensor& targets, const at::Tensor& scored_rows,
                       int64_t chunk_rows, bool want_grad) {
  const int64_t vocab = output.weight.out_features();
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(16, kLogitsChunkBytes / (4 * vocab));
  const Head head(output, hidden);
  ChunkedNll result;
  if (want_grad) result.grad_hidden = at::zeros(hidden.sizes(), hidden.options());
  const int64_t n_scored = scored_rows.numel();
  for (int64_t c0 = 0; c0 < n_scored; c0 += chunk_rows) {
    const at::Tensor rows = scored_rows.narrow(0, c0, std::min(chunk_rows, n_scored - c0));  // [R]
    const at::Tensor target = targets.index_select(0, rows).unsqueeze(1);                     // [R, 1]
    // the log-softmax in float32 whatever the compute dtype (a no-op for float32)
    at::Tensor logits = head.project(hidden.index_select(0, rows)).to(at::kFloat).contiguous();  // [R, vocab]
    const at::Tensor target_logit = logits.gather(1, target);                                 // [R, 1]
    // The logits become their softmax in place, one exp per entry
    // (model/fused_ops.h); the row logsumexps come back.
    const at::Tensor lse = softmax_rows_in_place(logits);                                     // [R, 1]
    result.nll_sum += (lse - target_logit).sum().item<double>();
    if (!want_grad) continue;
    // d nll / d logits = softmax - one_hot(target), in the logits' memory
    at::Tensor& grad_logits = logits;
    grad_logits.scatter_add_(1, target, at::full({rows.size(0), 1}, -1.0f, grad_logits.options()));
    result.grad_hidden.index_copy_(
        0, rows, head.project_back(grad_logits.to(hidden.scalar_type())));
  }
  return result;
}

// Autograd node: the forward computes the NLL sum and its gradient with
// respect to `hidden` chunk by chunk; the backward scales that gradient.
struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, int64_t output_address,
                            const at::Tensor& targets, const at::Tensor& scored_rows,
                            int64_t chunk_rows) {
    const auto* output = reinterpret_cast<const FrozenLinear*>(output_address);
    ChunkedNll r = chunked_nll(hidden, *output, targets, scored_rows, chunk_rows, /*want_grad=*/true);
    ctx->saved_data["grad_hidden"] = r.grad_hidden;
    return at::scalar_tensor(r.nll_sum, at::kFloat);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    at::Tensor grad_hidden = ctx->saved_data["grad_hidden"].toTensor() * grad_outputs[0];  // [N, dim]
    return {grad_hidden, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LossResult chunked_cross_entropy(const at::Tensor& hidden, const FrozenLinear& output,
                                 const at::Tensor& targets, const at::Tensor& weights,
                                 int64_t chunk_rows) {
  const int64_t dim = hidden.size(-1);
  if (output.weight.in_features() != dim) {
    throw std::invalid_argument("hidden states have " + std::to_string(dim) +
                                " features but the output projection " + output.name + " expects " +
                                std::to_string(output.weight.in_features()));
  }
  const at::Tensor flat_hidden = hidden.reshape({-1, dim});                   // [N, dim]
  const at::Tensor flat_targets = targets.reshape({-1}).to(hidden.device(), at::kLong);  // [N]
  const at::Tensor scored_rows =
      (weights.reshape({-1}).to(hidden.device()) > 0).nonzero().view({-1});  // [S]
  LossResult r;
  r.n_scored = scored_rows.numel();
  const double denominator = static_cast<double>(std::max<int64_t>(r.n_scored, 1));
  if (at::GradMode::is_enabled() && flat_hidden.requires_grad()) {
    at::Tensor sum = ChunkedCrossEntropy::apply(flat_hidden, reinterpret_cast<int64_t>(&output),
                                                flat_targets, scored_rows, chunk_rows);
    r.nll_sum = sum.item<double>();
    r.loss = sum / denominator;
  } else {
    r.nll_sum = chunked_nll(flat_hidden, output, flat_targets, scored_rows, chunk_rows, false).nll_sum;
    r.loss = at::scalar_tensor(r.nll_sum / denominator, at::kFloat);
  }
  return r;
}

}  // namespace cleave
