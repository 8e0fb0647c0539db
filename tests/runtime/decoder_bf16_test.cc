// bf16 decode weights (CpuKernels::UseBf16Weights, SmallBatchLinearBf16).
//
// (a) The bf16-weight GEMV on every SIMD path this CPU has. Against a double
// reference computed from the bf16-rounded weights it differs only by fp32
// accumulation: a sum of K fp32 products in any order is within
// (K + 2)·u·Σ|w x| of the exact value (u = 2⁻²⁴; +2 for the bias and the
// accumulated value). Against the fp32 weights it also carries the rounding
// of each weight to bf16, at most 2⁻⁸ of |w| (8 significant bits), so
// |Δy| ≤ 2⁻⁸·Σ|w x| on top.
//
// (b) Greedy decoding with the bf16 copy against fp32, MHA and MLA+RoPE
// (absorbed and naive), on the random-init model of threaded_decode_test
// (weights ×10, logits far from uniform). Tolerance: each of the chained
// products that feed a logit (3 per attention, 2 per MLP, the head: 11 for
// 2 layers, as there) moves by at most 2⁻⁸ of its absolute-value sum, and
// LayerNorm renormalises each block's input so relative errors add:
// 11·2⁻⁸ ≈ 0.043 of max(1, max|logit|). Both decoders are fed the fp32
// greedy token (lockstep). Where the fp32 top two are more than twice the
// tolerance apart the bound decides the token and bf16 must pick the same;
// closer (a near tie) either choice is correct. At least 32 of the 40 steps
// must pick the same token; on this random-init model the runs agree at 39
// or 40, the exceptions being a near tie (top-two gap 0.2 % of the logit
// scale) 30 steps into one MLA prompt, after which a free-running bf16
// continuation would follow another path. A weight that was not rounded,
// read at a wrong offset or widened wrongly moves logits by O(max|logit|).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/small_batch_linear.h"
#include "layers/math/bf16_math.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"
#include "tests/layers/decode_test_util.h"
#include "tests/runtime/greedy_decode_test_util.h"
#include "tests/runtime/simd_isa_test_util.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

using testing::Argmax;
using testing::kU;
using testing::Random;

constexpr double kBf16Rel = 1.0 / (1 << 8);

std::vector<uint16_t> ToBf16(const std::vector<float>& w) {
  std::vector<uint16_t> b(w.size());
  for (size_t i = 0; i < w.size(); ++i) b[i] = math::FloatToBf16Bits(w[i]);
  return b;
}

struct Reference {
  double value, magnitude;  // Σ w x + bias (+ y0), Σ|w x| + |bias| (+ |y0|)
};

// Row m, column n of x·wᵀ + bias (+ y0) in double, w given as floats.
Reference Exact(const std::vector<float>& x, const std::vector<float>& w,
                const std::vector<float>& bias, const float* y0, int64_t K, int64_t m,
                int64_t n) {
  Reference r{bias[n], std::fabs(bias[n])};
  for (int64_t k = 0; k < K; ++k) {
    const double p = static_cast<double>(w[n * K + k]) * x[m * K + k];
    r.value += p;
    r.magnitude += std::fabs(p);
  }
  if (y0 != nullptr) {
    r.value += *y0;
    r.magnitude += std::fabs(*y0);
  }
  return r;
}

using Bf16GemvIsaTest = testing::SimdIsaTest;

// Tails in N and K for both vector widths, every small M and two larger, with and without
// accumulation; one shape large enough to be split across threads.
TEST_P(Bf16GemvIsaTest, MatchesRoundedAndFp32References) {
  const SimdIsa isa = GetParam();
  const int64_t shapes[][2] = {{37, 203}, {16, 64}, {5, 7}, {3, 1}, {520, 300}};
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  uint32_t seed = 1;
  for (const auto& nk : shapes) {
    const int64_t N = nk[0], K = nk[1];
    // Above kSmallBatchMaxRows: row groups over weight panels (the 520 × 300
    // shape spans three panels), with a group left over.
    for (int64_t M : {1, 2, 3, 4, 9, 33}) {
      for (bool accumulate : {false, true}) {
        seed += 10;
        const std::vector<float> x = Random(M * K, seed), w = Random(N * K, seed + 1);
        const std::vector<float> bias = Random(N, seed + 2), y0 = Random(M * N, seed + 3);
        const std::vector<uint16_t> w16 = ToBf16(w);
        std::vector<float> w_rounded(w.size());
        for (size_t i = 0; i < w.size(); ++i) w_rounded[i] = math::Bf16BitsToFloat(w16[i]);
        std::vector<float> y = y0;
        SmallBatchLinearBf16(x.data(), w16.data(), bias.data(), y.data(), M, N, K,
                             Epilogue::kBias, accumulate, isa);
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < N; ++n) {
            const float* acc = accumulate ? &y0[m * N + n] : nullptr;
            const Reference r = Exact(x, w_rounded, bias, acc, K, m, n);
            const Reference f = Exact(x, w, bias, acc, K, m, n);
            const double got = y[m * N + n];
            ASSERT_NEAR(got, r.value, (K + 2) * kU * r.magnitude)
                << SimdIsaName(isa) << " rounded weights M=" << M << " N=" << N << " K=" << K
                << " at (" << m << ", " << n << ")";
            ASSERT_NEAR(got, f.value, (kBf16Rel + (K + 2) * kU) * f.magnitude)
                << SimdIsaName(isa) << " fp32 weights M=" << M << " N=" << N << " K=" << K
                << " at (" << m << ", " << n << ")";
          }
        }
      }
    }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Isas, Bf16GemvIsaTest, testing::kAllSimdIsas,
                         testing::SimdIsaParamName);

// CpuKernels::LinearForward reads the bf16 copy for a weight inside the
// registered range at any M (one row group or several),
// and the fp32 weight outside it.
TEST(Bf16DecodeWeightsTest, LinearForwardUsesTheCopyInsideTheRangeOnly) {
  const int64_t N = 48, K = 203;
  std::vector<float> params = Random(2 * N * K, 7);
  const std::vector<float> inside(params.begin() + N * K, params.end());
  const std::vector<float> outside = Random(N * K, 8);
  std::vector<float> rounded(inside.size());
  for (size_t i = 0; i < inside.size(); ++i) rounded[i] = math::RoundToBf16(inside[i]);
  const std::vector<float> bias = Random(N, 9);
  CpuKernels kernels;
  kernels.UseBf16Weights(params.data(), static_cast<int64_t>(params.size()));
  for (int64_t M : {int64_t{1}, kSmallBatchMaxRows, int64_t{9}}) {
    const std::vector<float> x = Random(M * K, 10 + M);
    std::vector<float> y(M * N), z(M * N);
    kernels.LinearForward(x.data(), params.data() + N * K, bias.data(), y.data(), M, N, K,
                          Epilogue::kBias, false);
    kernels.LinearForward(x.data(), outside.data(), bias.data(), z.data(), M, N, K,
                          Epilogue::kBias, false);
    double moved = 0;  // largest distance of the bf16 result from the fp32 weights' value
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        const Reference r = Exact(x, rounded, bias, nullptr, K, m, n);
        const Reference f = Exact(x, inside, bias, nullptr, K, m, n);
        const Reference o = Exact(x, outside, bias, nullptr, K, m, n);
        const double fp32_tol = (K + 2) * kU * r.magnitude;
        ASSERT_NEAR(y[m * N + n], r.value, fp32_tol) << "M=" << M << " (" << m << ", " << n << ")";
        ASSERT_NEAR(z[m * N + n], o.value, (K + 2) * kU * o.magnitude) << "M=" << M;
        moved = std::max(moved, std::fabs(y[m * N + n] - f.value) / fp32_tol);
      }
    }
    // The rounding is visible: somewhere the result is further from the
    // fp32-weight value than fp32 accumulation alone could put it.
    EXPECT_GT(moved, 1.0) << "M=" << M << ": the bf16 copy was not used";
  }
}

struct Case {
  const char* name;
  AttentionKind attention;
  DecodeMode mode;
};

constexpr int kPrompt = 5, kSteps = 40;
constexpr float kLogitRelTol = 11 * kBf16Rel;

std::vector<float> Step(Decoder& dec, const DecodeSegment& seg) {
  dec.Forward({&seg, 1}, false);
  return std::vector<float>(dec.logits(), dec.logits() + dec.config().vocab_size);
}

class Bf16GreedyTest : public ::testing::TestWithParam<Case> {};

// One model per kernels (a decoder runs on its model's kernels): the same
// fp32 parameters in both, the second's kernels reading their bf16 copy.
std::unique_ptr<GptModel> MakeModel(const ModelConfig& cfg, CpuKernels& kernels) {
  auto model_or = GptModel::Create(cfg, &kernels);
  CHECK(model_or.ok()) << model_or.status();
  std::unique_ptr<GptModel> model = std::move(*model_or);
  testing::InitScaled(*model, 23);
  return model;
}

TEST_P(Bf16GreedyTest, SameContinuationAndLogitsWithinTheRoundingBound) {
  const ModelConfig cfg = testing::GreedyTestConfig(GetParam().attention);
  CpuKernels fp32_kernels, bf16_kernels;
  std::unique_ptr<GptModel> fp32 = MakeModel(cfg, fp32_kernels);
  std::unique_ptr<GptModel> bf16 = MakeModel(cfg, bf16_kernels);
  ASSERT_TRUE(std::equal(fp32->params(), fp32->params() + fp32->num_params(), bf16->params()));
  bf16_kernels.UseBf16Weights(bf16->params(), bf16->num_params());

  const int V = cfg.vocab_size;
  for (uint32_t prompt_seed : {5u, 6u}) {
    SCOPED_TRACE(::testing::Message() << "prompt seed " << prompt_seed);
    std::unique_ptr<Decoder> a_dec =
        testing::MakeBatch1Decoder(*fp32, fp32_kernels, GetParam().mode, kPrompt);
    std::unique_ptr<Decoder> b_dec =
        testing::MakeBatch1Decoder(*bf16, bf16_kernels, GetParam().mode, kPrompt);
    const std::vector<int32_t> prompt = testing::RandomTokens(kPrompt, V, prompt_seed);
    const DecodeSegment seg{0, kPrompt, prompt.data()};
    std::vector<float> a = Step(*a_dec, seg), b = Step(*b_dec, seg);
    double largest_difference = 0;
    int decided_steps = 0, same_tokens = 0;
    for (int t = 0; t < kSteps; ++t) {
      float scale = 1.0f;
      for (float v : a) scale = std::max(scale, std::fabs(v));
      for (int v = 0; v < V; ++v) {
        ASSERT_NEAR(a[v], b[v], kLogitRelTol * scale) << "step " << t << " token " << v;
        largest_difference = std::max(largest_difference, std::fabs(double{a[v]} - b[v]));
      }
      // The bound decides the greedy token when the fp32 top two are further
      // apart than twice the tolerance; closer (a near tie) either is correct.
      std::vector<float> top(a);
      std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
      const int32_t next = Argmax(a);
      const bool decided = top[0] - top[1] > 2 * kLogitRelTol * scale;
      if (decided) {
        ASSERT_EQ(next, Argmax(b)) << "greedy token at step " << t;
        ++decided_steps;
      }
      if (next == Argmax(b)) ++same_tokens;
      const DecodeSegment step{0, 1, &next};
      a = Step(*a_dec, step);
      b = Step(*b_dec, step);
    }
    // The runs differ at all (the decoder reads the bf16 copy).
    EXPECT_GT(largest_difference, 0.0);
    EXPECT_GE(decided_steps, 8) << "the bound decides too few steps: choose another seed";
    EXPECT_GE(same_tokens, 32) << "greedy tokens agree at " << same_tokens << " of " << kSteps
                               << " steps";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, Bf16GreedyTest,
    ::testing::Values(Case{"mha", AttentionKind::kMha, DecodeMode::kAbsorbed},
                      Case{"mla_rope_absorbed", AttentionKind::kMlaRope, DecodeMode::kAbsorbed},
                      Case{"mla_rope_naive", AttentionKind::kMlaRope, DecodeMode::kNaive}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mla
