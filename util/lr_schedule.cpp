#include "util/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace cleave {

double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double base_lr, double min_ratio) {
  if (warmup > 0 && step < warmup) return base_lr * static_cast<double>(step + 1) / warmup;
  if (total <= warmup) return base_lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return base_lr * (min_ratio + (1.0 - min_ratio) * cosine);
}

}  // namespace cleave
