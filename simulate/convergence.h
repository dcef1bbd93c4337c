// When a run has converged: validation perplexity that has not improved on
// its best by `min_improvement` (relative) for `patience` evaluations in a
// row. One rule for the fleet, the centralized and the local-only runs, so
// every method of a study stops by the same criterion.
#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

namespace cleave::simulate {

class ConvergenceCheck {
 public:
  // patience 0: never converged (run every round).
  ConvergenceCheck(int64_t patience, double min_improvement)
      : patience_(patience), min_improvement_(min_improvement) {}

  // Records one evaluation's validation perplexity; true once converged.
  bool update(double validation_perplexity) {
    ++evaluations_;
    if (validation_perplexity < best_ * (1.0 - min_improvement_)) {
      best_ = validation_perplexity;
      best_evaluation_ = evaluations_;
      since_best_ = 0;
    } else {
      ++since_best_;   // best_ moves only by a real improvement, so a slow creep still adds up to one
    }
    return converged();
  }

  bool converged() const { return patience_ > 0 && since_best_ >= patience_; }
  double best() const { return best_; }
  int64_t evaluations() const { return evaluations_; }
  // The evaluation (1-based) of the last improvement by min_improvement.
  int64_t best_evaluation() const { return best_evaluation_; }

  // "validation perplexity not 1% better than its best for 2 evaluations"
  std::string rule() const {
    char buf[128];
    std::snprintf(buf, sizeof buf, "validation perplexity not %g%% below its best for %lld evaluations",
                  100.0 * min_improvement_, static_cast<long long>(patience_));
    return buf;
  }

 private:
  int64_t patience_;
  double min_improvement_;
  double best_ = std::numeric_limits<double>::infinity();
  int64_t evaluations_ = 0;
  int64_t best_evaluation_ = 0;
  int64_t since_best_ = 0;
};

}  // namespace cleave::simulate
