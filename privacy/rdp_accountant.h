// Privacy accounting for the subsampled Gaussian mechanism with Rényi
// differential privacy (RDP), as client-level DP-FedAvg uses it (McMahan et
// al., "Learning Differentially Private Recurrent Language Models", ICLR
// 2018): each round every registered site takes part independently with
// probability q (Poisson sampling), the sum of the participants' clipped
// updates (L2 norm <= C each) gets Gaussian noise of standard deviation z * C,
// and neighbouring federations differ by one site's data (add/remove).
//
// RDP of one round at order alpha (Mironov, Talwar and Zhang, "Rényi
// Differential Privacy of the Sampled Gaussian Mechanism", 2019):
//   integer alpha:     A = sum_{k=0..alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 z^2))
//   fractional alpha:  the two-sided series of their Section 3.3, with
//                      z0 = z^2 log(1/q - 1) + 1/2
//   rdp(alpha) = log(A) / (alpha - 1); T rounds compose to T * rdp(alpha).
// Conversion to (epsilon, delta)-DP, minimised over the orders (Canonne,
// Kamath and Steinke, "The Discrete Gaussian for Differential Privacy", 2020,
// Proposition 12; also Balle et al. 2020):
//   epsilon = rdp(alpha) + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1).
#pragma once

#include <cstdint>
#include <vector>

namespace cleave::privacy {

// The orders looked at by default: 1.1 ... 10.9 in steps of 0.1, 11 ... 63,
// 128, 256, 512, 1024.
std::vector<double> default_orders();

// RDP of the subsampled Gaussian mechanism at `order` (> 1), for `rounds`
// rounds at sampling rate q in [0, 1] and noise multiplier z > 0. +inf when
// it does not fit a double.
double subsampled_gaussian_rdp(double q, double noise_multiplier, int64_t rounds, double order);

struct PrivacySpent {
  double epsilon = 0;
  double order = 0;   // the order that gave it
};

// (epsilon, delta) from RDP values at the given orders (same length).
PrivacySpent epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta);

// Epsilon after `rounds` rounds of the subsampled Gaussian at (q, z), delta.
// Throws std::invalid_argument naming the bad argument.
PrivacySpent epsilon_after(double q, double noise_multiplier, int64_t rounds, double delta,
                           const std::vector<double>& orders = default_orders());

// The smallest noise multiplier (to 1e-4 relative) whose epsilon after
// `rounds` rounds at (q, delta) is at most target_epsilon.
double noise_for_epsilon(double q, double target_epsilon, int64_t rounds, double delta,
                         const std::vector<double>& orders = default_orders());

}  // namespace cleave::privacy
