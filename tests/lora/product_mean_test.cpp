#include "lora/product_mean.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace cleave::lora {
namespace {

constexpr int64_t kOut = 12, kIn = 10;

// One site's adapters for one projection "p": B [out, r], A [r, in].
NamedTensors site(const at::Tensor& b, const at::Tensor& a) { return {{"p.lora_a", a}, {"p.lora_b", b}}; }

at::Tensor random(at::IntArrayRef sizes, at::Generator& gen) { return at::randn(sizes, gen, at::kFloat); }

// The weighted mean of the products, formed densely in float64 by the test.
at::Tensor dense_mean(const std::vector<NamedTensors>& sites, const std::vector<double>& weights) {
  double sum = 0;
  for (double w : weights) sum += w;
  at::Tensor mean = at::zeros({kOut, kIn}, at::kDouble);
  for (size_t k = 0; k < sites.size(); ++k) {
    mean += (weights[k] / sum) * sites[k].at("p.lora_b").to(at::kDouble).mm(sites[k].at("p.lora_a").to(at::kDouble));
  }
  return mean;
}

ProductMean merge(const std::vector<NamedTensors>& sites, const std::vector<double>& weights, int64_t rank) {
  std::vector<const NamedTensors*> pointers;
  for (const NamedTensors& s : sites) pointers.push_back(&s);
  return product_mean(pointers, weights, rank);
}

at::Tensor product_of(const ProductMean& mean) {
  return mean.adapters.at("p.lora_b").to(at::kDouble).mm(mean.adapters.at("p.lora_a").to(at::kDouble));
}

TEST(ProductMean, MeanOfProductsThatFitsTheRankIsReproducedExactly) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  // Two rank-2 sites whose products have rank 1 each: their mean has rank 2.
  std::vector<NamedTensors> sites;
  for (int k = 0; k < 2; ++k) {
    at::Tensor b = random({kOut, 2}, gen);
    b.select(1, 1).zero_();
    sites.push_back(site(b, random({2, kIn}, gen)));
  }
  const std::vector<double> weights = {30, 10};
  const ProductMean mean = merge(sites, weights, 2);
  const at::Tensor expected = dense_mean(sites, weights);
  EXPECT_LT((product_of(mean) - expected).abs().max().item<double>(), 1e-5);
  EXPECT_LT(mean.truncation_error, 1e-6);
  EXPECT_EQ(mean.adapters.at("p.lora_a").sizes(), (std::vector<int64_t>{2, kIn}));
  EXPECT_EQ(mean.adapters.at("p.lora_b").sizes(), (std::vector<int64_t>{kOut, 2}));
  EXPECT_EQ(mean.adapters.at("p.lora_a").scalar_type(), at::kFloat);
}

TEST(ProductMean, SitesSharingTheirAFitAnyNumberOfSites) {
  // FFA-LoRA's case: one A for all, so every product lies in A's row space.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const at::Tensor a = random({3, kIn}, gen);
  std::vector<NamedTensors> sites;
  for (int k = 0; k < 5; ++k) sites.push_back(site(random({kOut, 3}, gen), a));
  const std::vector<double> weights = {1, 2, 3, 4, 5};
  const ProductMean mean = merge(sites, weights, 3);
  EXPECT_LT((product_of(mean) - dense_mean(sites, weights)).abs().max().item<double>(), 1e-5);
  EXPECT_LT(mean.truncation_error, 1e-6);
}

TEST(ProductMean, TruncationKeepsTheBestRankRApproximationAndReportsItsTrueError) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  std::vector<NamedTensors> sites;
  for (int k = 0; k < 3; ++k) sites.push_back(site(random({kOut, 2}, gen), random({2, kIn}, gen)));
  const std::vector<double> weights = {1, 1, 2};
  const ProductMean mean = merge(sites, weights, 2);
  const at::Tensor m = dense_mean(sites, weights);
  // The error the factors really make, measured on the dense mean.
  const double true_error = (m - product_of(mean)).norm().item<double>() / m.norm().item<double>();
  EXPECT_NEAR(mean.truncation_error, true_error, 1e-5);
  EXPECT_GT(true_error, 0.05) << "a sum of three random rank-2 products does not fit rank 2";
  // Eckart-Young: no rank-2 matrix does better than dropping all but the two
  // largest singular values of the dense mean.
  const at::Tensor sigma = at::linalg_svdvals(m);
  const double best = std::sqrt(sigma.slice(0, 2).pow(2).sum().item<double>() / sigma.pow(2).sum().item<double>());
  EXPECT_NEAR(true_error, best, 1e-5);
  // A keeps the scale of a fresh A: orthonormal rows.
  const at::Tensor a = mean.adapters.at("p.lora_a").to(at::kDouble);
  EXPECT_LT((a.mm(a.t()) - at::eye(2, at::kDouble)).abs().max().item<double>(), 1e-5);
}

TEST(ProductMean, ZeroProductsGiveZeroBAndAnOrthonormalA) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(10);
  // Fresh adapters: B is zero, so every product is zero; A must stay usable
  // (non-zero) or B would never get a gradient again.
  std::vector<NamedTensors> sites = {site(at::zeros({kOut, 2}), random({2, kIn}, gen)),
                                     site(at::zeros({kOut, 2}), random({2, kIn}, gen))};
  const ProductMean mean = merge(sites, {1, 1}, 2);
  EXPECT_EQ(mean.truncation_error, 0.0);
  EXPECT_EQ(mean.adapters.at("p.lora_b").abs().max().item<double>(), 0.0);
  const at::Tensor a = mean.adapters.at("p.lora_a").to(at::kDouble);
  EXPECT_LT((a.mm(a.t()) - at::eye(2, at::kDouble)).abs().max().item<double>(), 1e-5);
}

TEST(ProductMean, DisagreeingSitesAreRefusedNamingTheSiteAndTensor) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const NamedTensors good = site(random({kOut, 2}, gen), random({2, kIn}, gen));
  const NamedTensors wide = site(random({kOut, 3}, gen), random({3, kIn + 1}, gen));
  try {
    merge({good, wide}, {1, 1}, 2);
    FAIL() << "a site of another input width was merged";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("site 1's p.lora_a"), std::string::npos) << e.what();
  }
  const NamedTensors torn = site(random({kOut, 3}, gen), random({2, kIn}, gen));
  try {
    merge({good, torn}, {1, 1}, 2);
    FAIL() << "a site whose A and B disagree on the rank was merged";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("disagree on the rank"), std::string::npos) << e.what();
  }
  NamedTensors lonely = {{"p.lora_a", random({2, kIn}, gen)}};
  try {
    merge({lonely}, {1}, 2);
    FAIL() << "an A without its B was merged";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("p.lora_b"), std::string::npos) << e.what();
  }
  EXPECT_THROW(merge({good}, {0}, 2), std::invalid_argument);
  EXPECT_THROW(merge({good, good}, {1}, 2), std::invalid_argument);
}

// The best rank-k approximation of `m` by an SVD computed here: U_k S_k V_k^T.
at::Tensor best_rank(const at::Tensor& m, int64_t k) {
  auto [u, s, vh] = at::linalg_svd(m, /*full_matrices=*/false);
  return u.slice(1, 0, k).mm(at::diag(s.slice(0, 0, k))).mm(vh.slice(0, 0, k));
}

TEST(ProductMean, TruncateToRankGivesTheBestApproximationOfTheEffectiveProductInTheSitesScale) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(12);
  // A global in product_mean's form: the mean of three random rank-4 sites.
  std::vector<NamedTensors> sites;
  for (int k = 0; k < 3; ++k) sites.push_back(site(random({kOut, 4}, gen), random({4, kIn}, gen)));
  const NamedTensors global = merge(sites, {1, 2, 3}, 4).adapters;
  const double global_scale = 16.0 / 4, site_scale = 16.0 / 2;   // alpha 16 at ranks 4 and 2
  const NamedTensors small = truncate_to_rank(global, 2, global_scale / site_scale);
  ASSERT_EQ(small.at("p.lora_a").sizes(), (std::vector<int64_t>{2, kIn}));
  ASSERT_EQ(small.at("p.lora_b").sizes(), (std::vector<int64_t>{kOut, 2}));
  const at::Tensor effective =
      global_scale * global.at("p.lora_b").to(at::kDouble).mm(global.at("p.lora_a").to(at::kDouble));
  const at::Tensor site_effective =
      site_scale * small.at("p.lora_b").to(at::kDouble).mm(small.at("p.lora_a").to(at::kDouble));
  EXPECT_LT((site_effective - best_rank(effective, 2)).abs().max().item<double>(), 1e-4);
  // At the global's own rank and scale it is the global.
  const NamedTensors same = truncate_to_rank(global, 4, 1.0);
  EXPECT_TRUE(at::equal(same.at("p.lora_a"), global.at("p.lora_a")));
  EXPECT_TRUE(at::equal(same.at("p.lora_b"), global.at("p.lora_b")));
  EXPECT_THROW(truncate_to_rank(global, 5, 1.0), std::invalid_argument);
  EXPECT_THROW(truncate_to_rank(global, 0, 1.0), std::invalid_argument);
  EXPECT_THROW(truncate_to_rank(global, 2, 0.0), std::invalid_argument);
}

// Sites at ranks 4, 2 and 1 with their own alphas: the mean is of the
// effective products s_k B_k A_k, returned for the result's scale s.
std::vector<double> relative_scales(const std::vector<double>& alphas, const std::vector<int64_t>& ranks,
                                    double scale) {
  std::vector<double> out;
  for (size_t k = 0; k < alphas.size(); ++k) out.push_back(alphas[k] / static_cast<double>(ranks[k]) / scale);
  return out;
}

at::Tensor dense_effective_mean(const std::vector<NamedTensors>& sites, const std::vector<double>& weights,
                                const std::vector<double>& alphas, const std::vector<int64_t>& ranks) {
  double sum = 0;
  for (double w : weights) sum += w;
  at::Tensor mean = at::zeros({kOut, kIn}, at::kDouble);
  for (size_t k = 0; k < sites.size(); ++k) {
    const double s = alphas[k] / static_cast<double>(ranks[k]);
    mean += (weights[k] / sum * s) *
            sites[k].at("p.lora_b").to(at::kDouble).mm(sites[k].at("p.lora_a").to(at::kDouble));
  }
  return mean;
}

TEST(ProductMean, MixedRanksAndScalesGiveTheMeanEffectiveProductWhenItFitsTheRank) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(13);
  const std::vector<int64_t> ranks = {4, 2, 1};
  const std::vector<double> alphas = {8, 8, 2}, weights = {3, 2, 5};
  // Every B in one 3-dimensional column space: the mean has rank <= 3.
  const at::Tensor basis = random({kOut, 3}, gen);
  std::vector<NamedTensors> sites;
  for (int64_t r : ranks) sites.push_back(site(basis.mm(random({3, r}, gen)), random({r, kIn}, gen)));
  const double scale = 8.0 / 3;   // the result's: alpha 8 at rank 3
  const ProductMean mean = product_mean({&sites[0], &sites[1], &sites[2]}, weights, 3,
                                        relative_scales(alphas, ranks, scale));
  const at::Tensor expected = dense_effective_mean(sites, weights, alphas, ranks);
  EXPECT_LT((scale * product_of(mean) - expected).abs().max().item<double>(),
            1e-4 * expected.abs().max().item<double>());
  EXPECT_LT(mean.truncation_error, 1e-5);
  EXPECT_EQ(mean.adapters.at("p.lora_a").sizes(), (std::vector<int64_t>{3, kIn}));
}

TEST(ProductMean, MixedRanksAndScalesReportTheTrueTruncationError) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(14);
  const std::vector<int64_t> ranks = {4, 2, 1};
  const std::vector<double> alphas = {16, 4, 1}, weights = {1, 1, 2};
  std::vector<NamedTensors> sites;
  for (int64_t r : ranks) sites.push_back(site(random({kOut, r}, gen), random({r, kIn}, gen)));
  const double scale = 16.0 / 4;
  const ProductMean mean = product_mean({&sites[0], &sites[1], &sites[2]}, weights, 4,
                                        relative_scales(alphas, ranks, scale));
  const at::Tensor m = dense_effective_mean(sites, weights, alphas, ranks);
  const at::Tensor merged = scale * product_of(mean);
  const double true_error = (m - merged).norm().item<double>() / m.norm().item<double>();
  EXPECT_GT(true_error, 0.01) << "rank-7 sum of random products does not fit rank 4";
  EXPECT_NEAR(mean.truncation_error, true_error, 1e-5);
  EXPECT_LT((merged - best_rank(m, 4)).abs().max().item<double>(), 1e-4 * m.abs().max().item<double>());
  EXPECT_THROW(product_mean({&sites[0], &sites[1]}, {1, 1}, 4, {1.0}), std::invalid_argument);
  EXPECT_THROW(product_mean({&sites[0], &sites[1]}, {1, 1}, 4, {1.0, -1.0}), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::lora
