// AdamW over a range of the flat buffer: closed-form first step, decay only
// where the segments say, bit-exact sharding, restart and thread-count
// independence, argument validation.
#include "optim/adamw.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "glog/logging.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

constexpr float kEps32 = std::numeric_limits<float>::epsilon();

struct Problem {
  std::vector<float> params;
  std::vector<std::vector<float>> grads;  // one per step
  std::vector<DecaySegment> segments;
};

// 1000 floats in five tensors: matrix, bias, matrix, norm weight, matrix.
Problem MakeProblem(int steps, uint32_t seed) {
  Problem p;
  p.segments = {{0, 300, true}, {300, 37, false}, {337, 400, true}, {737, 63, false},
                {800, 200, true}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.params.resize(1000);
  for (float& x : p.params) x = 0.5f * normal(rng);
  p.grads.assign(steps, std::vector<float>(1000));
  for (auto& g : p.grads)
    for (float& x : g) x = 0.1f * normal(rng);
  return p;
}

bool BitwiseEqual(absl::Span<const float> a, absl::Span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const AdamWConfig kConfig{0.9f, 0.95f, 1e-8f, 0.1f};
const float kLrs[] = {1e-3f, 3e-3f, 2e-3f, 5e-4f, 1e-4f};

TEST(AdamW, FirstStepMatchesClosedForm) {
  // With m = v = 0, the first update has m̂ = g and sqrt(v̂) = |g|, so
  // p₁ = p₀(1 − lr·wd) − lr·g/(|g| + eps) for decayed elements (wd = 0 else).
  Problem prob = MakeProblem(1, 7);
  std::vector<float> p = prob.params;
  absl::StatusOr<AdamW> adamw = AdamW::Create(kConfig, {0, 1000}, prob.segments);
  ASSERT_TRUE(adamw.ok()) << adamw.status();
  const float lr = 2e-3f;
  adamw->Step(p.data(), prob.grads[0].data(), lr);
  EXPECT_EQ(adamw->step(), 1);
  for (const DecaySegment& seg : prob.segments) {
    for (int64_t i = seg.offset; i < seg.offset + seg.numel; ++i) {
      const double p0 = prob.params[i], g = prob.grads[0][i];
      const double wd = seg.decay ? kConfig.weight_decay : 0.0;
      const double expected = p0 * (1.0 - lr * wd) - lr * g / (std::fabs(g) + kConfig.eps);
      // About ten float roundings, each relative to a term of size ≤ |p₀| or ≤ lr.
      const double tol = 10 * kEps32 * (std::fabs(p0) + lr);
      ASSERT_NEAR(p[i], expected, tol) << "element " << i;
      ASSERT_NEAR(adamw->m()[i], (1 - kConfig.beta1) * g, 4 * kEps32 * std::fabs(g));
      ASSERT_NEAR(adamw->v()[i], (1 - kConfig.beta2) * g * g, 6 * kEps32 * g * g);
    }
  }
}

TEST(AdamW, ZeroGradientDecaysOnlyDecayedSegments) {
  Problem prob = MakeProblem(1, 8);
  std::vector<float> p = prob.params;
  const std::vector<float> zero(1000, 0.0f);
  absl::StatusOr<AdamW> adamw = AdamW::Create(kConfig, {0, 1000}, prob.segments);
  ASSERT_TRUE(adamw.ok());
  const float lr = 1e-2f;
  adamw->Step(p.data(), zero.data(), lr);
  // m = v = 0, so the Adam term is exactly 0 / (0 + eps) = 0.
  const float factor = static_cast<float>(1.0 - static_cast<double>(lr) * kConfig.weight_decay);
  for (const DecaySegment& seg : prob.segments)
    for (int64_t i = seg.offset; i < seg.offset + seg.numel; ++i)
      ASSERT_EQ(p[i], seg.decay ? prob.params[i] * factor : prob.params[i]) << i;
}

std::vector<float> RunWhole(const Problem& prob, int steps) {
  std::vector<float> p = prob.params;
  absl::StatusOr<AdamW> adamw = AdamW::Create(kConfig, {0, 1000}, prob.segments);
  CHECK(adamw.ok());
  for (int t = 0; t < steps; ++t) adamw->Step(p.data(), prob.grads[t].data(), kLrs[t]);
  return p;
}

TEST(AdamW, UnalignedRangesReproduceTheWholeBufferBitwise) {
  // Ranges cutting through segments, not on vector boundaries.
  Problem prob = MakeProblem(5, 9);
  const std::vector<float> whole = RunWhole(prob, 5);
  std::vector<float> p = prob.params;
  for (ElementRange range : {ElementRange{0, 101}, ElementRange{101, 777}, ElementRange{777, 1000}}) {
    absl::StatusOr<AdamW> adamw = AdamW::Create(kConfig, range, prob.segments);
    ASSERT_TRUE(adamw.ok()) << adamw.status();
    for (int t = 0; t < 5; ++t)
      adamw->Step(p.data() + range.begin, prob.grads[t].data() + range.begin, kLrs[t]);
  }
  EXPECT_TRUE(BitwiseEqual(p, whole));
}

TEST(AdamW, ResultDoesNotDependOnThreadCount) {
  Problem prob = MakeProblem(5, 10);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = RunWhole(prob, 5);
  omp_set_num_threads(3);
  const std::vector<float> three = RunWhole(prob, 5);
  omp_set_num_threads(threads);
  EXPECT_TRUE(BitwiseEqual(one, three));
}

TEST(AdamW, RestoredStateContinuesBitwise) {
  Problem prob = MakeProblem(5, 11);
  const std::vector<float> uninterrupted = RunWhole(prob, 5);

  std::vector<float> p = prob.params;
  absl::StatusOr<AdamW> first = AdamW::Create(kConfig, {0, 1000}, prob.segments);
  ASSERT_TRUE(first.ok());
  for (int t = 0; t < 3; ++t) first->Step(p.data(), prob.grads[t].data(), kLrs[t]);
  // What a checkpoint saves: m, v, t.
  const std::vector<float> m(first->m().begin(), first->m().end());
  const std::vector<float> v(first->v().begin(), first->v().end());
  const int64_t t_saved = first->step();
  EXPECT_EQ(t_saved, 3);

  absl::StatusOr<AdamW> resumed = AdamW::Create(kConfig, {0, 1000}, prob.segments);
  ASSERT_TRUE(resumed.ok());
  std::copy(m.begin(), m.end(), resumed->mutable_m().begin());
  std::copy(v.begin(), v.end(), resumed->mutable_v().begin());
  resumed->set_step(t_saved);
  for (int t = 3; t < 5; ++t) resumed->Step(p.data(), prob.grads[t].data(), kLrs[t]);
  EXPECT_EQ(resumed->step(), 5);
  EXPECT_TRUE(BitwiseEqual(p, uninterrupted));
}

TEST(AdamW, CreateRejectsARangeWithUncoveredElements) {
  const std::vector<DecaySegment> gap = {{0, 10, true}, {12, 10, false}};
  EXPECT_EQ(AdamW::Create(kConfig, {0, 22}, gap).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A range inside the covered parts is fine.
  EXPECT_TRUE(AdamW::Create(kConfig, {12, 20}, gap).ok());
  EXPECT_EQ(AdamW::Create(kConfig, {0, 30}, gap).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AdamW, CreateRejectsOverlappingSegments) {
  const std::vector<DecaySegment> overlap = {{0, 10, true}, {5, 10, false}};
  EXPECT_EQ(AdamW::Create(kConfig, {0, 15}, overlap).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AdamW, CreateRejectsInvalidHyperParameters) {
  const std::vector<DecaySegment> seg = {{0, 4, true}};
  for (AdamWConfig bad : {AdamWConfig{1.0f, 0.95f, 1e-8f, 0.1f}, AdamWConfig{0.9f, -0.1f, 1e-8f, 0.1f},
                          AdamWConfig{0.9f, 0.95f, 0.0f, 0.1f}, AdamWConfig{0.9f, 0.95f, 1e-8f, -1.0f}})
    EXPECT_EQ(AdamW::Create(bad, {0, 4}, seg).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mla
