#pragma once
// The learning-rate schedule: linear warmup, then cosine decay, then constant.
// A pure function of the step, so a resumed run recomputes it from the step
// alone (nothing to checkpoint beyond the step).
//
//   step < warmup:          lr = peak · (step + 1) / warmup
//   warmup ≤ step < total:  lr = min + ½·(1 + cos(π·(step − warmup)/(total − warmup)))·(peak − min)
//   step ≥ total:           lr = min   (the cosine's value at step = total)
//
// `step` is the 0-based index of the update about to be made. Warmup starts
// at peak/warmup rather than 0 so the first update is not wasted, and reaches
// peak on update warmup − 1; the cosine then starts at peak and ends at min on
// update `total`. Thread-safe (pure).
#include <cstdint>

#include "absl/status/status.h"

namespace mla {

struct LrSchedule {
  double peak_lr = 0.0;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;  // 0: start at peak
  int64_t total_steps = 0;   // end of the cosine; >= warmup_steps
};

// InvalidArgument unless 0 <= min_lr <= peak_lr and 0 <= warmup <= total.
absl::Status ValidateLrSchedule(const LrSchedule& schedule);

// The learning rate of update `step` (>= 0) for a validated schedule.
float LearningRate(const LrSchedule& schedule, int64_t step);

}  // namespace mla
