// cleave privacy epsilon | noise: the RDP accountant of client-level DP
// (privacy/rdp_accountant.h) from the command line, for planning a
// federation's noise before it runs.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "privacy/rdp_accountant.h"

namespace cleave::cli {
namespace {

int64_t required_rounds(const ParsedArgs& args) {
  const int64_t rounds = args.get_int("--rounds");
  if (rounds < 1) throw UsageError("--rounds must be >= 1, got " + std::to_string(rounds));
  return rounds;
}

// Argument errors of the accountant are the user's: shown with the usage.
template <typename Fn>
auto usage_errors(Fn fn) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

const char* kAssumptions =
    "Assumes what `cleave aggregator` does with aggregator.dp: each registered site\n"
    "takes part in a round independently with probability --sampling-rate (Poisson\n"
    "sampling), each site's update is clipped to an L2 norm C and Gaussian noise of\n"
    "standard deviation noise_multiplier x C is added to the sum; neighbouring\n"
    "federations differ by one site (client-level DP, add/remove). RDP of the\n"
    "subsampled Gaussian (Mironov, Talwar and Zhang 2019), converted to (epsilon,\n"
    "delta) as Canonne, Kamath and Steinke 2020, Proposition 12.";

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

}  // namespace

ArgParser privacy_epsilon_parser() {
  return ArgParser("cleave privacy epsilon", "--sampling-rate Q --noise-multiplier Z --rounds T --delta D",
                   std::string("Prints the epsilon of T rounds of client-level DP-FedAvg at (Q, Z) and delta D;\n"
                               "the last line is `epsilon: X`.\n") +
                       kAssumptions)
      .value("--sampling-rate", "Q", "a site's chance to take part in a round, in (0, 1]")
      .value("--noise-multiplier", "Z", "noise standard deviation over the clipping norm, > 0")
      .value("--rounds", "T", "rounds run")
      .value("--delta", "D", "delta, in (0, 1); usually below 1 / (number of sites)");
}

int run_privacy_epsilon(const ParsedArgs& args) {
  const double q = args.get_double("--sampling-rate");
  const double z = args.get_double("--noise-multiplier");
  const int64_t rounds = required_rounds(args);
  const double delta = args.get_double("--delta");
  const privacy::PrivacySpent spent = usage_errors([&] { return privacy::epsilon_after(q, z, rounds, delta); });
  std::cout << "privacy: " << rounds << " rounds at sampling rate " << number(q) << ", noise multiplier "
            << number(z) << ", delta " << number(delta) << " (best RDP order " << number(spent.order) << ")\n"
            << "epsilon: " << number(spent.epsilon) << "\n";
  return 0;
}

ArgParser privacy_noise_parser() {
  return ArgParser("cleave privacy noise", "--sampling-rate Q --target-epsilon E --rounds T --delta D",
                   std::string("Prints the smallest noise multiplier whose epsilon after T rounds at sampling\n"
                               "rate Q and delta D is at most E; the last line is `noise_multiplier: Z`.\n") +
                       kAssumptions)
      .value("--sampling-rate", "Q", "a site's chance to take part in a round, in (0, 1]")
      .value("--target-epsilon", "E", "the epsilon budget of the whole run, > 0")
      .value("--rounds", "T", "rounds planned")
      .value("--delta", "D", "delta, in (0, 1)");
}

int run_privacy_noise(const ParsedArgs& args) {
  const double q = args.get_double("--sampling-rate");
  const double target = args.get_double("--target-epsilon");
  const int64_t rounds = required_rounds(args);
  const double delta = args.get_double("--delta");
  const double z = usage_errors([&] { return privacy::noise_for_epsilon(q, target, rounds, delta); });
  const privacy::PrivacySpent spent = privacy::epsilon_after(q, z, rounds, delta);
  std::cout << "privacy: epsilon " << number(spent.epsilon) << " after " << rounds << " rounds at sampling rate "
            << number(q) << ", delta " << number(delta) << "\n"
            << "noise_multiplier: " << number(z) << "\n";
  return 0;
}

}  // namespace cleave::cli
