// The stopping rule every method of a study shares: no improvement of at
// least min_improvement (relative to the best so far) for `patience`
// evaluations in a row.
#include "simulate/convergence.h"

#include <gtest/gtest.h>

namespace cleave::simulate {
namespace {

TEST(ConvergenceCheck, StopsAfterPatienceEvaluationsWithoutARealImprovement) {
  ConvergenceCheck check(2, 0.01);
  EXPECT_FALSE(check.update(100));   // the first is always an improvement
  EXPECT_FALSE(check.update(90));    // -10%
  EXPECT_FALSE(check.update(89.5));  // -0.56%: not enough, 1 of 2
  EXPECT_FALSE(check.update(80));    // -11% on the best (90): the count restarts
  EXPECT_FALSE(check.update(81));    // worse: 1 of 2
  EXPECT_TRUE(check.update(79.5));   // -0.63% on 80: 2 of 2
  EXPECT_TRUE(check.converged());
  EXPECT_EQ(check.best_evaluation(), 4);
  EXPECT_DOUBLE_EQ(check.best(), 80);
  EXPECT_EQ(check.evaluations(), 6);
}

TEST(ConvergenceCheck, ASlowCreepAddsUpToAnImprovement) {
  // 0.6% a step never beats the last value by 1%, but it beats the best
  // recorded improvement by 1% every other step, so the run goes on.
  ConvergenceCheck check(2, 0.01);
  double ppl = 50;
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(check.update(ppl)) << "evaluation " << i + 1;
    ppl *= 0.994;
  }
}

TEST(ConvergenceCheck, PatienceZeroNeverStops) {
  ConvergenceCheck check(0, 0.01);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(check.update(10));
  EXPECT_FALSE(check.converged());
}

TEST(ConvergenceCheck, RuleSaysWhatItWaitsFor) {
  EXPECT_EQ(ConvergenceCheck(3, 0.005).rule(),
            "validation perplexity not 0.5% below its best for 3 evaluations");
}

}  // namespace
}  // namespace cleave::simulate
