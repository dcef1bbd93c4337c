#include "lora/product_mean.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace cleave::lora {
namespace {

constexpr const char* kA = ".lora_a";
constexpr const char* kB = ".lora_b";

// The adapted projections of `names`: each "<base>" with both tensors.
std::vector<std::string> pair_bases(const NamedTensors& adapters) {
  std::vector<std::string> bases;
  for (const auto& [name, tensor] : adapters) {
    const bool is_a = is_lora_a(name);
    if (!is_a && !is_lora_b(name)) {
      throw std::invalid_argument("product_mean: tensor " + name + " is neither a lora_a nor a lora_b");
    }
    const std::string base = name.substr(0, name.size() - std::string(kA).size());
    if (!adapters.count(base + (is_a ? kB : kA))) {
      throw std::invalid_argument("product_mean: " + name + " has no partner " + base + (is_a ? kB : kA));
    }
    if (is_a) bases.push_back(base);
  }
  return bases;
}

// Names as site 0's; every A [r_k, in] and B [out, r_k] 2-D with site 0's
// in and out, and the site's own rank r_k the same in its A and B.
void require_same_layout(const NamedTensors& first, const std::vector<std::string>& bases, const NamedTensors& site,
                         size_t index) {
  const std::string who = "product_mean: site " + std::to_string(index);
  if (site.size() != first.size()) {
    throw std::invalid_argument(who + " has " + std::to_string(site.size()) + " tensors, site 0 has " +
                                std::to_string(first.size()));
  }
  for (const std::string& base : bases) {
    for (const char* suffix : {kA, kB}) {
      if (!site.count(base + suffix)) throw std::invalid_argument(who + " lacks " + base + suffix);
    }
    const at::Tensor& a = site.at(base + kA);
    const at::Tensor& b = site.at(base + kB);
    const at::Tensor& a0 = first.at(base + kA);
    const at::Tensor& b0 = first.at(base + kB);
    if (a.dim() != 2 || a.size(1) != a0.size(1)) {
      throw std::invalid_argument(who + "'s " + base + kA + " has shape " + c10::str(a.sizes()) + ", site 0's " +
                                  c10::str(a0.sizes()) + " (the ranks may differ, the inputs may not)");
    }
    if (b.dim() != 2 || b.size(0) != b0.size(0)) {
      throw std::invalid_argument(who + "'s " + base + kB + " has shape " + c10::str(b.sizes()) + ", site 0's " +
                                  c10::str(b0.sizes()) + " (the ranks may differ, the outputs may not)");
    }
    if (b.size(1) != a.size(0)) {
      throw std::invalid_argument(who + "'s " + base + kB + " " + c10::str(b.sizes()) + " and " + base + kA + " " +
                                  c10::str(a.sizes()) + " disagree on the rank");
    }
  }
}

}  // namespace

ProductMean product_mean(const std::vector<const NamedTensors*>& sites, const std::vector<double>& weights,
                         int64_t rank, const std::vector<double>& scales, const NamedTensors* added) {
  if (sites.empty()) throw std::invalid_argument("product_mean: no sites");
  if (!scales.empty() && scales.size() != sites.size()) {
    throw std::invalid_argument("product_mean: " + std::to_string(scales.size()) + " scales for " +
                                std::to_string(sites.size()) + " sites");
  }
  for (double s : scales) {
    if (!(s > 0) || !std::isfinite(s)) throw std::invalid_argument("product_mean: scales must be finite and > 0");
  }
  if (weights.size() != sites.size()) {
    throw std::invalid_argument("product_mean: " + std::to_string(weights.size()) + " weights for " +
                                std::to_string(sites.size()) + " sites");
  }
  if (rank <= 0) throw std::invalid_argument("product_mean: rank must be > 0");
  double weight_sum = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) throw std::invalid_argument("product_mean: weights must be finite and >= 0");
    weight_sum += w;
  }
  if (!(weight_sum > 0)) throw std::invalid_argument("product_mean: the weights sum to 0");
  const std::vector<std::string> bases = pair_bases(*sites[0]);
  for (size_t k = 0; k < sites.size(); ++k) require_same_layout(*sites[0], bases, *sites[k], k);
  if (added) require_same_layout(*sites[0], bases, *added, sites.size());

  at::NoGradGuard no_grad;
  ProductMean result;
  double dropped_squared = 0, total_squared = 0;
  for (const std::string& base : bases) {
    std::vector<at::Tensor> weighted_b, a_rows;
    for (size_t k = 0; k < sites.size(); ++k) {
      if (weights[k] == 0) continue;
      const at::Tensor b = sites[k]->at(base + kB).detach().to(at::kCPU, at::kDouble);   // [out, r_k]
      const double scale = scales.empty() ? 1.0 : scales[k];
      weighted_b.push_back(b * (weights[k] / weight_sum * scale));
      a_rows.push_back(sites[k]->at(base + kA).detach().to(at::kCPU, at::kDouble));      // [r_k, in]
    }
    if (added) {
      weighted_b.push_back(added->at(base + kB).detach().to(at::kCPU, at::kDouble));
      a_rows.push_back(added->at(base + kA).detach().to(at::kCPU, at::kDouble));
    }
    const at::Tensor bc = at::cat(weighted_b, 1);   // [out, sum r_k]
    const at::Tensor ac = at::cat(a_rows, 0);       // [sum r_k, in]
    auto [qb, rb] = at::linalg_qr(bc);              // qb [out, m], rb [m, K r]
    auto [qa, ra] = at::linalg_qr(ac.t());          // qa [in, n], ra [n, K r]
    auto [u, s, vh] = at::linalg_svd(rb.mm(ra.t()), /*full_matrices=*/false);  // core [m, n]; s [p]
    const int64_t keep = std::min<int64_t>(rank, s.size(0));
    total_squared += s.pow(2).sum().item<double>();
    dropped_squared += s.slice(0, keep).pow(2).sum().item<double>();

    const int64_t out = bc.size(0), in = ac.size(1);
    // Fewer than `rank` directions only when the projection is narrower than
    // the rank: the extra rows and columns stay zero.
    at::Tensor b = at::zeros({out, rank}, at::kDouble);
    at::Tensor a = at::zeros({rank, in}, at::kDouble);
    b.slice(1, 0, keep).copy_(qb.mm(u.slice(1, 0, keep)) * s.slice(0, 0, keep));     // U_r S_r
    a.slice(0, 0, keep).copy_(qa.mm(vh.slice(0, 0, keep).t()).t());                  // V_r^T
    result.adapters[base + kA] = a.to(at::kFloat).contiguous();
    result.adapters[base + kB] = b.to(at::kFloat).contiguous();
  }
  result.dropped_squared = dropped_squared;
  result.total_squared = total_squared;
  result.truncation_error = total_squared > 0 ? std::sqrt(dropped_squared / total_squared) : 0.0;
  return result;
}

NamedTensors truncate_to_rank(const NamedTensors& adapters, int64_t rank, double scale_ratio) {
  if (!(scale_ratio > 0) || !std::isfinite(scale_ratio)) {
    throw std::invalid_argument("truncate_to_rank: scale_ratio must be finite and > 0");
  }
  at::NoGradGuard no_grad;
  NamedTensors truncated;
  for (const std::string& base : pair_bases(adapters)) {
    const at::Tensor& a = adapters.at(base + kA);   // [R, in]
    const at::Tensor& b = adapters.at(base + kB);   // [out, R]
    if (rank < 1 || rank > a.size(0) || b.size(1) != a.size(0)) {
      throw std::invalid_argument("truncate_to_rank: " + base + " has rank " + std::to_string(a.size(0)) +
                                  " (lora_b " + c10::str(b.sizes()) + "), cannot give rank " + std::to_string(rank));
    }
    truncated[base + kA] = a.detach().slice(0, 0, rank).to(at::kFloat).contiguous().clone();
    truncated[base + kB] = (b.detach().slice(1, 0, rank).to(at::kDouble) * scale_ratio).to(at::kFloat).contiguous();
  }
  return truncated;
}

}  // namespace cleave::lora
