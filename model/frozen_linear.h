// The matmul of a frozen base weight, and the hook adapters plug into.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "model/cpu_matmul.h"
#include "model/frozen_weight.h"

namespace cleave {

// y = x W^T. Autograd flows to x only; a quantized W is dequantized in the
// forward and again in the backward pass, so no float copy is kept alive in
// between. With CPU bf16 or int8 matmuls (model/cpu_matmul.h) and float32
// x, both products run in that arithmetic and return float32. x: [..., in] -> y: [..., out].
at::Tensor frozen_matmul(const at::Tensor& x, const FrozenWeight& weight);

// The arithmetic a product of `a` with `weight` uses under the process's
// cpu_matmul() mode (model/cpu_matmul.h): bf16 or int8 only for float32
// activations on the CPU and a CPU float32 weight; int8 only on int8_rows
// weights (the others take bf16 in int8 mode). frozen_matmul and the chunked
// head loss both ask this.
CpuMatmul frozen_product(const at::Tensor& a, const FrozenWeight& weight);

// Adapters on frozen linear layers, keyed by the base weight's GGUF name
// ("blk.3.attn_q.weight"). The LoRA implementation lives in lora/.
class LinearAdapters {
 public:
  virtual ~LinearAdapters() = default;
  // y + the adapter's output for input x (x: [..., in], y: [..., out]), or y
  // itself when `base_name` has no adapter. Taking y lets an implementation
  // fold the addition into its last product (no [..., out] delta and no pass
  // over it).
  virtual at::Tensor add_delta(const std::string& base_name, const at::Tensor& x, const at::Tensor& y) const = 0;
  // Whether `base_name` has an adapter (the fused head loss needs the plain
  // logits when the output projection is adapted).
  virtual bool adapts(const std::string& base_name) const = 0;
  // The tensors of `base_name`'s adapter that add_delta() differentiates through
  // (empty when none): what a recomputed block must produce gradients for.
  virtual std::vector<at::Tensor> parameters_of(const std::string& base_name) const = 0;
};

// A frozen linear layer with its GGUF name and optional bias.
struct FrozenLinear {
  std::string name;     // "blk.0.attn_q.weight"
  FrozenWeight weight;  // [out, in]
  at::Tensor bias;      // [out] or undefined

  // The one place an adapted matmul is computed: W x (+ b) + adapter delta.
  at::Tensor forward(const at::Tensor& x, const LinearAdapters* adapters) const;
};

}  // namespace cleave
