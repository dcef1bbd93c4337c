// The aggregator's clock is the one in util/clock.h (round deadlines are
// tested by moving a manual clock instead of sleeping).
#pragma once

#include "util/clock.h"

namespace cleave::aggregator {

using cleave::Clock;
using cleave::ManualClock;
using cleave::SteadyClock;

}  // namespace cleave::aggregator
