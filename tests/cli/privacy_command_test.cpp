// `cleave privacy epsilon | noise`: the accountant from the command line.
#include <gtest/gtest.h>

#include <string>

#include "tests/cli/cli_runner.h"

namespace cleave {
namespace {

using test::run_cleave;

double value_after(const std::string& line, const std::string& prefix) {
  EXPECT_EQ(line.rfind(prefix, 0), 0u) << line;
  return std::stod(line.substr(prefix.size()));
}

TEST(PrivacyCommand, EpsilonAndNoiseAreInverses) {
  const auto epsilon = run_cleave({"privacy", "epsilon", "--sampling-rate", "0.05", "--noise-multiplier", "1.1",
                                   "--rounds", "200", "--delta", "1e-5"});
  ASSERT_EQ(epsilon.status, 0) << epsilon.output;
  const double eps = value_after(epsilon.last_line(), "epsilon: ");
  EXPECT_GT(eps, 0.5);
  EXPECT_LT(eps, 20);

  const auto noise = run_cleave({"privacy", "noise", "--sampling-rate", "0.05", "--target-epsilon",
                                 std::to_string(eps), "--rounds", "200", "--delta", "1e-5"});
  ASSERT_EQ(noise.status, 0) << noise.output;
  EXPECT_NEAR(value_after(noise.last_line(), "noise_multiplier: "), 1.1, 1e-3);
}

TEST(PrivacyCommand, TheGaussianMechanismWithoutSamplingHasItsKnownEpsilon) {
  // z = 4.530877117 makes one Gaussian release (1, 1e-6)-DP; the default
  // order grid is coarser than the exact optimum, so slightly above 1.
  const auto r = run_cleave({"privacy", "epsilon", "--sampling-rate", "1", "--noise-multiplier", "4.530877117",
                             "--rounds", "1", "--delta", "1e-6"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NEAR(value_after(r.last_line(), "epsilon: "), 1.0, 0.01);
}

TEST(PrivacyCommand, BadArgumentsNameTheFlag) {
  const auto missing = run_cleave({"privacy", "epsilon", "--sampling-rate", "0.1", "--rounds", "3", "--delta", "1e-5"});
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("--noise-multiplier"), std::string::npos) << missing.output;
  const auto range = run_cleave({"privacy", "noise", "--sampling-rate", "1.5", "--target-epsilon", "1", "--rounds",
                                 "3", "--delta", "1e-5"});
  EXPECT_EQ(range.status, 2) << range.output;
  EXPECT_NE(range.output.find("sampling rate"), std::string::npos) << range.output;
  const auto help = run_cleave({"privacy", "epsilon", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("Poisson"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace cleave
