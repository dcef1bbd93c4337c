// The learning-rate schedule of every trainer here (sites, centralized
// baselines, the inversion audit) and of the rate an aggregator sends across
// its rounds: linear warmup, then a cosine down to a fraction of the peak.
#pragma once

#include <cstdint>

namespace cleave {

// Linear warmup for `warmup` steps, then cosine decay to min_ratio * base_lr at
// `total` (held there after it); base_lr throughout when total <= warmup.
double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double base_lr, double min_ratio);

}  // namespace cleave
