// The accountant against values published with an independent
// implementation (TensorFlow Privacy's rdp_accountant tests, which check
// their series against multi-precision numerical integration), closed forms,
// and the properties any accountant must have.
#include "privacy/rdp_accountant.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cleave::privacy {
namespace {

TEST(RdpAccountant, MatchesPublishedSubsampledGaussianValues) {
  // compute_rdp(q = 0.1, z = 2, steps = 10, order 5) = 0.07737
  EXPECT_NEAR(subsampled_gaussian_rdp(0.1, 2, 10, 5), 0.07737, 1e-5);
  // compute_rdp(q = 0.01, z = 2.5, steps = 50, orders [1.5, 2.5, 5, 50, 100])
  // = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307]: fractional and
  // integer orders, and the large order where the bound blows up.
  const double orders[] = {1.5, 2.5, 5, 50, 100};
  const double published[] = {0.00065, 0.001085, 0.00218075, 0.023846, 167.416307};
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(subsampled_gaussian_rdp(0.01, 2.5, 50, orders[i]), published[i], 1e-5) << "order " << orders[i];
  }
}

TEST(RdpAccountant, NoSamplingIsTheGaussianMechanismAndNoDataCostsNothing) {
  EXPECT_DOUBLE_EQ(subsampled_gaussian_rdp(1, 10, 1, 20), 0.1);   // alpha / (2 z^2)
  EXPECT_DOUBLE_EQ(subsampled_gaussian_rdp(1, 3, 7, 2.5), 7 * 2.5 / 18);
  EXPECT_EQ(subsampled_gaussian_rdp(0, 10, 1, 20), 0);
}

TEST(RdpAccountant, ConversionToEpsilonMatchesPublishedValues) {
  // Constant RDP 1.1 at orders 2..32 (pure DP): the largest order wins, and
  // epsilon at delta 1e-5 is 1.32783806176.
  std::vector<double> orders, rdp;
  for (int a = 2; a <= 32; ++a) {
    orders.push_back(a);
    rdp.push_back(1.1);
  }
  const PrivacySpent spent = epsilon_from_rdp(orders, rdp, 1e-5);
  EXPECT_NEAR(spent.epsilon, 1.32783806176, 1e-9);
  EXPECT_EQ(spent.order, 32);

  // The Gaussian mechanism with z = 4.530877117 is exactly (1, 1e-6)-DP over
  // a fine grid of orders.
  std::vector<double> fine;
  for (int i = 1001; i < 100000; ++i) fine.push_back(0.001 * i);
  EXPECT_NEAR(epsilon_after(1, 4.530877117, 1, 1e-6, fine).epsilon, 1, 1e-6);
}

TEST(RdpAccountant, EpsilonGrowsWithRoundsAndSamplingAndFallsWithNoise) {
  const double delta = 1e-5;
  const double base = epsilon_after(0.05, 1.0, 100, delta).epsilon;
  EXPECT_GT(base, 0);
  EXPECT_GT(epsilon_after(0.05, 1.0, 200, delta).epsilon, base);
  EXPECT_GT(epsilon_after(0.10, 1.0, 100, delta).epsilon, base);
  EXPECT_LT(epsilon_after(0.05, 1.5, 100, delta).epsilon, base);
  EXPECT_LT(epsilon_after(0.05, 1.0, 100, 1e-3).epsilon, base);   // a looser delta
}

TEST(RdpAccountant, NoiseForAnEpsilonReachesItAndNoLess) {
  const double z = noise_for_epsilon(0.05, 3.0, 100, 1e-5);
  EXPECT_LE(epsilon_after(0.05, z, 100, 1e-5).epsilon, 3.0);
  EXPECT_GT(epsilon_after(0.05, z * 0.99, 100, 1e-5).epsilon, 3.0);
  // Round trip through the Gaussian case above.
  std::vector<double> fine;
  for (int i = 1001; i < 100000; ++i) fine.push_back(0.001 * i);
  EXPECT_NEAR(noise_for_epsilon(1, 1.0, 1, 1e-6, fine), 4.530877117, 1e-3);
}

TEST(RdpAccountant, RefusesArgumentsOutsideTheirRange) {
  EXPECT_THROW(subsampled_gaussian_rdp(1.5, 1, 1, 2), std::invalid_argument);
  EXPECT_THROW(subsampled_gaussian_rdp(0.1, 0, 1, 2), std::invalid_argument);
  EXPECT_THROW(subsampled_gaussian_rdp(0.1, 1, 1, 1), std::invalid_argument);
  EXPECT_THROW(epsilon_after(0.1, 1, 1, 0), std::invalid_argument);
  EXPECT_THROW(noise_for_epsilon(0.1, 0, 10, 1e-5), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::privacy
