// LoRA-aware merging of several sites' adapters (lora.aggregation: product):
// the weighted mean of the products B_i A_i, computed exactly, re-factored to
// a rank-r pair by truncated SVD (FlexLoRA, Bai et al., NeurIPS 2024).
//
// The mean of K rank-r products has rank at most K r, and it is never formed
// as an [out, in] matrix: M = [w_1 B_1 .. w_K B_K] [A_1; ..; A_K] = Bc Ac, so
// with Bc = Qb Rb and Ac^T = Qa Ra, M = Qb (Rb Ra^T) Qa^T and only the
// [K r, K r] core is decomposed. Cost O((out + in) (K r)^2) per projection.
//
// Sites may train at different ranks r_k (and alphas): only out and in must
// agree, the stacked factors are [out, sum r_k] and [sum r_k, in]. Each
// site's product then counts with its LoRA scale s_k = alpha_k / r_k over the
// result's, so the mean is of the effective updates s_k B_k A_k.
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

// `sites` hold the same tensor names (flat "<base>.lora_a" [r_k, in] /
// "<base>.lora_b" [out, r_k]) with the same out and in; each site's rank r_k
// is its own. Weights are >= 0 with a positive sum (normalised here).
// `scales`, one per site (empty: all 1), are each site's LoRA scale over the
// result's (s_k / s): the result's s B A approximates sum_k w_k s_k B_k A_k.
// `added`, when given, joins the mean as it is (weight 1, scale 1), e.g. the
// part of the global that lower-rank sites never held. Computed in float64.
// Throws std::invalid_argument naming the site index and tensor when names or
// shapes disagree, or when a name has no partner.
ProductMean product_mean(const std::vector<const NamedTensors*>& sites, const std::vector<double>& weights,
                         int64_t rank, const std::vector<double>& scales = {},
                         const NamedTensors* added = nullptr);

// Adapters at a lower rank, for a site that trains at `rank` (heterogeneous
// ranks): A[:rank] and B[:, :rank] * scale_ratio for every pair, float32.
// With `adapters` in product_mean's form (A = V^T, B = U S, singular values
// in decreasing order) and scale_ratio = s / s_site (the LoRA scales alpha /
// r of the adapters and of the site), s_site B' A' is the best rank-`rank`
// approximation of the adapters' effective update s B A (Eckart-Young).
// Adapters not in that form (fresh ones: B = 0, where any truncation is
// exact; or loaded from a file) are still a valid start, only not the best
// one. Throws std::invalid_argument when `rank` is not in [1, the adapters'
// rank] or scale_ratio is not finite and > 0.
NamedTensors truncate_to_rank(const NamedTensors& adapters, int64_t rank, double scale_ratio);

}  // namespace cleave::lora
