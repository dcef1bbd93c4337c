// The suggestion for a mistyped configuration key or flag.
#include "util/closest_name.h"

#include <gtest/gtest.h>

namespace cleave {
namespace {

TEST(ClosestName, NearestByEditDistanceOrSnakeCaseInitials) {
  const std::vector<std::string> keys = {"steps", "lr", "warmup_steps", "seed"};
  EXPECT_EQ(closest_name("learning_rate", keys), "lr");
  EXPECT_EQ(closest_name("step", keys), "steps");
  EXPECT_EQ(closest_name("warmup", keys), "");
  EXPECT_EQ(closest_name("sead", keys), "seed");
  EXPECT_EQ(closest_name("completely_different", keys), "");
}

}  // namespace
}  // namespace cleave
