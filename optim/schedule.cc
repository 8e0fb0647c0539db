#include "optim/schedule.h"

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace mla {

absl::Status ValidateLrSchedule(const LrSchedule& s) {
  if (!(s.min_lr >= 0.0 && s.min_lr <= s.peak_lr) || !std::isfinite(s.peak_lr))
    return absl::InvalidArgumentError(absl::StrCat(
        "learning-rate schedule needs 0 <= min_lr <= peak_lr, got min_lr=", s.min_lr,
        " peak_lr=", s.peak_lr));
  if (s.warmup_steps < 0 || s.total_steps < s.warmup_steps)
    return absl::InvalidArgumentError(absl::StrCat(
        "learning-rate schedule needs 0 <= warmup_steps <= total_steps, got warmup_steps=",
        s.warmup_steps, " total_steps=", s.total_steps));
  return absl::OkStatus();
}

float LearningRate(const LrSchedule& s, int64_t step) {
  CHECK_GE(step, 0);
  if (step < s.warmup_steps)
    return static_cast<float>(s.peak_lr * static_cast<double>(step + 1) /
                              static_cast<double>(s.warmup_steps));
  // The cosine ends at min_lr on update `total`; stay there.
  if (step >= s.total_steps) return static_cast<float>(s.min_lr);
  const double progress = static_cast<double>(step - s.warmup_steps) /
                          static_cast<double>(s.total_steps - s.warmup_steps);
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return static_cast<float>(s.min_lr + cosine * (s.peak_lr - s.min_lr));
}

}  // namespace mla
