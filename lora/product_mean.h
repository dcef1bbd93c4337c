// LoRA-aware merging of several sites' adapters (lora.aggregation: product):
// the weighted mean of the products B_i A_i, computed exactly, re-factored to
// a rank-r pair by truncated SVD (FlexLoRA, Bai et al., NeurIPS 2024).
//
// The mean of K rank-r products has rank at most K r, and it is never formed
// as an [out, in] matrix: M = [w_1 B_1 .. w_K B_K] [A_1; ..; A_K] = Bc Ac, so
// with Bc = Qb Rb and Ac^T = Qa Ra, M = Qb (Rb Ra^T) Qa^T and only the
// [K r, K r] core is decomposed. Cost O((out + in) (K r)^2) per projection.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "lora/adapter_set.h"

namespace cleave::lora {

struct ProductMean {
  // "<base>.lora_a" [r, in] = V_r^T (orthonormal rows, the scale of a fresh
  // A) and "<base>.lora_b" [out, r] = U_r S_r, float32, for every pair of the
  // inputs. B A is the best rank-r approximation of the mean product.
  NamedTensors adapters;
  // ||M - B A||_F / ||M||_F over every projection together (the singular
  // values dropped by the truncation); 0 when the mean fits rank r, and 0
  // when every product is 0.
  double truncation_error = 0.0;
  // Its parts, to combine several calls: the sum over projections of the
  // squared singular values dropped, and of all of them (||M||_F^2).
  double dropped_squared = 0.0, total_squared = 0.0;
};

// `sites` hold the same tensor names and shapes (flat "<base>.lora_a" /
// "<base>.lora_b"); weights are >= 0 with a positive sum (normalised here).
// Computed in float64. Throws std::invalid_argument naming the site index and
// tensor when names or shapes disagree, or when a name has no partner.
ProductMean product_mean(const std::vector<const NamedTensors*>& sites, const std::vector<double>& weights,
                         int64_t rank);

}  // namespace cleave::lora
