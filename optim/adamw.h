#pragma once
// AdamW (torch.optim.AdamW semantics, docs/model.md) over one contiguous
// range [lo, hi) of the flat parameter buffer: the whole buffer in plain data
// parallelism, this rank's shard under ZeRO-1. Owns the first and second
// moments m and v of that range (one contiguous buffer each, zero at start)
// and the step count t. Which elements are weight-decayed is given by a list
// of segments of the flat buffer (built by the caller from the parameter
// layout, so optim does not depend on runtime/).
//
// The per-element math is base/adamw_math.h, shared with the CUDA
// kernel. Step() is OpenMP-parallel over elements and vectorised; results do
// not depend on the thread count or on where the range starts (each element is
// updated by the same scalar expression), so a sharded step equals the
// unsharded one bit for bit.
// Thread safety: none (one optimizer per rank, driven by its training loop).
// Failure: Create validates its arguments and returns InvalidArgument.
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "comm/communicator.h"

namespace mla {

// A run of the flat parameter buffer and whether AdamW decays it (one per
// parameter tensor: ParamSpec's offset, numel, decay).
struct DecaySegment {
  int64_t offset = 0;
  int64_t numel = 0;
  bool decay = false;
};

// Hyper-parameters; the defaults are torch.optim.AdamW's.
struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
};

class AdamW {
 public:
  // `range` is the part of the flat buffer this optimizer updates; `segments`
  // (sorted by offset, non-overlapping) must cover every element of it.
  // Segments outside the range are ignored.
  static absl::StatusOr<AdamW> Create(const AdamWConfig& config, ElementRange range,
                                      absl::Span<const DecaySegment> segments);

  AdamW(AdamW&&) = default;
  AdamW& operator=(AdamW&&) = default;
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // One update with learning rate `lr`: increments t, then updates
  // params_range[i], m[i], v[i] from grads_range[i] for i in [0, hi − lo).
  // `params_range` and `grads_range` point at element lo of the flat
  // parameter and gradient buffers.
  void Step(float* params_range, const float* grads_range, float lr);

  const AdamWConfig& config() const { return config_; }
  ElementRange range() const { return range_; }
  // Updates made so far (t of the last update; 0 before the first).
  int64_t step() const { return step_; }
  absl::Span<const float> m() const { return m_; }
  absl::Span<const float> v() const { return v_; }

  // For restoring a checkpoint: write the moments in place, then the step.
  absl::Span<float> mutable_m() { return absl::MakeSpan(m_); }
  absl::Span<float> mutable_v() { return absl::MakeSpan(v_); }
  void set_step(int64_t step);

 private:
  // A maximal run of the range (relative to lo) with one decay setting.
  struct Run {
    int64_t begin;
    int64_t end;
    bool decay;
  };
  AdamW(const AdamWConfig& config, ElementRange range, std::vector<Run> runs);

  AdamWConfig config_;
  ElementRange range_;
  std::vector<Run> runs_;
  std::vector<float> m_;
  std::vector<float> v_;
  int64_t step_ = 0;
};

// The per-element decay flags of `range` (1: decayed), after the checks of
// AdamW::Create, for optimizers that keep the flags as data (the CUDA step).
absl::StatusOr<std::vector<uint8_t>> BuildDecayMask(const AdamWConfig& config, ElementRange range,
                                                    absl::Span<const DecaySegment> segments);

}  // namespace mla
