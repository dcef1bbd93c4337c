// One home for the products cleave hands to oneDNN directly (int8 codes in
// model/int8_matmul.h, bf16 operands in model/bf16_matmul.h): a [m, k] row-major
// times b (k, n) with float32 accumulation and a float32 result, so neither
// needs a rounded output converted back. Primitives are built once per shape
// and kept. Internal to model/.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace cleave {

enum class ProductOperands { s8, bf16 };  // both a and b

struct ProductShape {
  int64_t m, k, n;
  int64_t ldc;              // out's row stride (>= n: a slice of wider logits)
  bool b_rows_are_columns;  // b stored as [n, k] rows (a b^T); else as [k, n] rows (a B)
  ProductOperands operands;
  bool accumulate;          // out += a b instead of out = a b
  bool operator<(const ProductShape& o) const;
};

// "[m, k] x [k, n]"
std::string describe(const ProductShape& shape);

// out[m, n] (+)= sum_k a[m, k] b(k, n). a, b: int8 or bf16 (uint16 bits) as
// shape.operands says. Throws std::runtime_error naming the shape when oneDNN
// fails, or when this build has no oneDNN (onednn_products_built()).
void run_onednn_product(const ProductShape& shape, const void* a, const void* b, float* out);

// Throws std::invalid_argument ("int8 product: out must be ...", or bf16)
// unless out is a CPU float [m, n] with unit column stride and a row stride
// of at least n: what run_onednn_product writes into.
void check_product_out(const at::Tensor& out, int64_t m, int64_t n, ProductOperands operands);

// Whether this build links oneDNN (libdnnl-dev at configure time).
bool onednn_products_built();

}  // namespace cleave
