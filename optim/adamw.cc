#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/adamw_math.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace mla {

namespace {

// Maximal runs of `range` (relative to its start) with one decay setting;
// fails unless the sorted, non-overlapping segments cover the range.
struct DecayRun {
  int64_t begin;
  int64_t end;
  bool decay;
};

absl::StatusOr<std::vector<DecayRun>> BuildDecayRuns(ElementRange range,
                                                     absl::Span<const DecaySegment> segments) {
  if (range.begin < 0 || range.end < range.begin)
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW: bad range [", range.begin, ", ", range.end, ")"));
  std::vector<DecayRun> runs;
  int64_t covered_to = range.begin;  // every element below this has a segment
  int64_t previous_end = 0;
  for (const DecaySegment& seg : segments) {
    if (seg.numel < 0 || seg.offset < previous_end)
      return absl::InvalidArgumentError(
          absl::StrCat("AdamW: segment at offset ", seg.offset, " (", seg.numel,
                       " elements) is unsorted, overlapping or negative"));
    previous_end = seg.offset + seg.numel;
    const int64_t lo = std::max(seg.offset, range.begin);
    const int64_t hi = std::min(seg.offset + seg.numel, range.end);
    if (lo >= hi) continue;
    if (lo != covered_to)
      return absl::InvalidArgumentError(absl::StrCat(
          "AdamW: elements [", covered_to, ", ", lo, ") of the range have no decay segment"));
    covered_to = hi;
    if (!runs.empty() && runs.back().decay == seg.decay) {
      runs.back().end = hi - range.begin;
    } else {
      runs.push_back({lo - range.begin, hi - range.begin, seg.decay});
    }
  }
  if (covered_to != range.end)
    return absl::InvalidArgumentError(absl::StrCat(
        "AdamW: elements [", covered_to, ", ", range.end, ") of the range have no decay segment"));
  return runs;
}

absl::Status ValidateAdamWConfig(const AdamWConfig& config) {
  if (!(config.beta1 >= 0.0f && config.beta1 < 1.0f) ||
      !(config.beta2 >= 0.0f && config.beta2 < 1.0f))
    return absl::InvalidArgumentError(absl::StrCat("AdamW: betas must lie in [0, 1), got ",
                                                   config.beta1, ", ", config.beta2));
  if (!(config.eps > 0.0f))
    return absl::InvalidArgumentError(absl::StrCat("AdamW: eps must be > 0, got ", config.eps));
  if (!(config.weight_decay >= 0.0f))
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW: weight_decay must be >= 0, got ", config.weight_decay));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AdamW> AdamW::Create(const AdamWConfig& config, ElementRange range,
                                    absl::Span<const DecaySegment> segments) {
  MLA_RETURN_IF_ERROR(ValidateAdamWConfig(config));
  MLA_ASSIGN_OR_RETURN(std::vector<DecayRun> decay_runs, BuildDecayRuns(range, segments));
  std::vector<Run> runs;
  runs.reserve(decay_runs.size());
  for (const DecayRun& r : decay_runs) runs.push_back({r.begin, r.end, r.decay});
  return AdamW(config, range, std::move(runs));
}

absl::StatusOr<std::vector<uint8_t>> BuildDecayMask(const AdamWConfig& config, ElementRange range,
                                                    absl::Span<const DecaySegment> segments) {
  MLA_RETURN_IF_ERROR(ValidateAdamWConfig(config));
  MLA_ASSIGN_OR_RETURN(std::vector<DecayRun> runs, BuildDecayRuns(range, segments));
  std::vector<uint8_t> mask(static_cast<size_t>(range.size()), 0);
  for (const DecayRun& r : runs)
    if (r.decay) std::fill(mask.begin() + r.begin, mask.begin() + r.end, uint8_t{1});
  return mask;
}

AdamW::AdamW(const AdamWConfig& config, ElementRange range, std::vector<Run> runs)
    : config_(config),
      range_(range),
      runs_(std::move(runs)),
      m_(static_cast<size_t>(range.size()), 0.0f),
      v_(static_cast<size_t>(range.size()), 0.0f) {}

void AdamW::set_step(int64_t step) {
  CHECK_GE(step, 0);
  step_ = step;
}

void AdamW::Step(float* params_range, const float* grads_range, float lr) {
  ++step_;
  const AdamWStepScalars s = AdamWStepScalars::Make(config_.beta1, config_.beta2, config_.eps,
                                                    config_.weight_decay, lr, step_);
  float* p = params_range;
  const float* g = grads_range;
  float* m = m_.data();
  float* v = v_.data();
  // One parallel region; each run is a work-shared loop without a barrier
  // between runs (runs are disjoint), so many small runs (biases, norms) cost
  // no fork/join each.
#pragma omp parallel
  for (const Run& run : runs_) {
    const float decay_factor = run.decay ? s.decay_factor : 1.0f;
#pragma omp for simd schedule(static) nowait
    for (int64_t i = run.begin; i < run.end; ++i)
      AdamWUpdateElement(p[i], m[i], v[i], g[i], decay_factor, s);
  }
}

}  // namespace mla
