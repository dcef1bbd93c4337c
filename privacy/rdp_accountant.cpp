#include "privacy/rdp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace cleave::privacy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)) without overflow.
double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b);
  return hi + std::log1p(std::exp(-std::abs(a - b)));
}

// log(exp(a) - exp(b)) for a >= b.
double log_sub(double a, double b) {
  if (b == -kInf) return a;
  if (b >= a) return -kInf;
  return a + std::log1p(-std::exp(b - a));
}

// log(erfc(x)), also where erfc(x) underflows (large x: the asymptotic series).
double log_erfc(double x) {
  if (x < 25) return std::log(std::erfc(x));
  const double r = 1 / (x * x);
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log1p(-0.5 * r + 0.75 * r * r - 1.875 * r * r * r);
}

// log A_alpha for integer alpha >= 2: the finite binomial sum.
double log_a_integer(double q, double z, int64_t alpha) {
  double log_a = -kInf;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  for (int64_t k = 0; k <= alpha; ++k) {
    const double kk = static_cast<double>(k);
    const double log_binom = std::lgamma(static_cast<double>(alpha) + 1) - std::lgamma(kk + 1) -
                             std::lgamma(static_cast<double>(alpha - k) + 1);
    log_a = log_add(log_a, log_binom + kk * log_q + static_cast<double>(alpha - k) * log_1mq +
                               (kk * kk - kk) / (2 * z * z));
  }
  return log_a;
}

// log A_alpha for fractional alpha: two series split at z0 (Mironov, Talwar
// and Zhang 2019, Section 3.3), summed until their terms fall below e^-30.
// Generalised binomial coefficients alternate in sign past alpha, so each
// series is kept as a log magnitude and terms are added or subtracted.
double log_a_fractional(double q, double z, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  const double z0 = z * z * std::log(1 / q - 1) + 0.5;
  double log_coef = 0;    // log |C(alpha, i)|
  bool positive = true;   // sign of C(alpha, i)
  for (int64_t step = 0; step < 100000; ++step) {
    const double i = static_cast<double>(step);
    const double j = alpha - i;
    const double log_t0 = log_coef + i * log_q + j * log_1mq;
    const double log_t1 = log_coef + j * log_q + i * log_1mq;
    const double log_e0 = std::log(0.5) + log_erfc((i - z0) / (std::sqrt(2.0) * z));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * z));
    const double log_s0 = log_t0 + (i * i - i) / (2 * z * z) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * z * z) + log_e1;
    if (positive) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::max(log_s0, log_s1) < -30 && i > alpha) break;
    // C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1)
    log_coef += std::log(std::abs(alpha - i)) - std::log(i + 1);
    if (alpha - i < 0) positive = !positive;
  }
  return log_add(log_a0, log_a1);
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace

std::vector<double> default_orders() {
  std::vector<double> orders;
  for (int tenth = 11; tenth < 110; ++tenth) orders.push_back(tenth / 10.0);
  for (int order = 11; order < 64; ++order) orders.push_back(order);
  for (double order : {128.0, 256.0, 512.0, 1024.0}) orders.push_back(order);
  return orders;
}

double subsampled_gaussian_rdp(double q, double noise_multiplier, int64_t rounds, double order) {
  require(q >= 0 && q <= 1, "the sampling rate must be in [0, 1], got " + std::to_string(q));
  require(noise_multiplier > 0 && std::isfinite(noise_multiplier),
          "the noise multiplier must be positive, got " + std::to_string(noise_multiplier));
  require(rounds >= 0, "the number of rounds must be >= 0, got " + std::to_string(rounds));
  require(order > 1, "an RDP order must be > 1, got " + std::to_string(order));
  if (std::isinf(order)) return kInf;
  if (q == 0 || rounds == 0) return 0;
  const double z = noise_multiplier;
  double per_round;
  if (q == 1) {
    per_round = order / (2 * z * z);   // the Gaussian mechanism itself
  } else {
    const double log_a = order == std::floor(order) ? log_a_integer(q, z, static_cast<int64_t>(order))
                                                    : log_a_fractional(q, z, order);
    per_round = log_a / (order - 1);
  }
  return static_cast<double>(rounds) * per_round;
}

PrivacySpent epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta) {
  require(orders.size() == rdp.size() && !orders.empty(), "epsilon_from_rdp: one RDP value per order is needed");
  require(delta > 0 && delta < 1, "delta must be in (0, 1), got " + std::to_string(delta));
  PrivacySpent best{kInf, 0};
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    if (!(a > 1) || !std::isfinite(rdp[i]) || std::isinf(a)) continue;
    const double epsilon = rdp[i] + std::log1p(-1 / a) - (std::log(delta) + std::log(a)) / (a - 1);
    if (epsilon < best.epsilon) best = {epsilon, a};
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

PrivacySpent epsilon_after(double q, double noise_multiplier, int64_t rounds, double delta,
                           const std::vector<double>& orders) {
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  for (double order : orders) rdp.push_back(subsampled_gaussian_rdp(q, noise_multiplier, rounds, order));
  return epsilon_from_rdp(orders, rdp, delta);
}

double noise_for_epsilon(double q, double target_epsilon, int64_t rounds, double delta,
                         const std::vector<double>& orders) {
  require(target_epsilon > 0 && std::isfinite(target_epsilon),
          "the target epsilon must be positive and finite, got " + std::to_string(target_epsilon));
  require(rounds >= 1, "the number of rounds must be >= 1, got " + std::to_string(rounds));
  auto epsilon = [&](double z) { return epsilon_after(q, z, rounds, delta, orders).epsilon; };
  double lo = 1e-3, hi = 1;
  while (epsilon(hi) > target_epsilon) {
    lo = hi;
    hi *= 2;
    require(hi < 1e6, "no noise multiplier below 1e6 reaches epsilon " + std::to_string(target_epsilon));
  }
  while ((hi - lo) > 1e-4 * hi) {
    const double mid = 0.5 * (lo + hi);
    (epsilon(mid) > target_epsilon ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace cleave::privacy
