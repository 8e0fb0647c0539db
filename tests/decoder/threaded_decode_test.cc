// Batch-1 greedy decoding at 2 OpenMP threads against 1 thread, for MHA and
// MLA+RoPE (absorbed and naive): every step's logits agree within float32
// reduction-order error and the greedy continuations are the same tokens.
// The shapes are large enough that the threaded code paths run: the
// small-batch linear layers split the head and the MLP weights (≥ 256 KiB)
// across threads, the absorbed path splits a lone segment's query rows into
// chunks, and the naive path splits its expansion by positions.
//
// Tolerance. Both runs compute the same function in float32 and differ only
// in summation order (how the GEMMs split their rows). A float32 inner product
// of length K is exact to within γ_K·Σ|a_i·b_i|, γ_K ≈ K·u, u = 2⁻²⁴; the
// longest here is the MLP's K = 4C = 512, so each product is good to
// 512·u ≈ 3.1e-5 of its absolute-value sum. A logit passes through at most
// 3 chained products per attention, 2 per MLP and the head: 2 layers → 11;
// LayerNorm renormalises each block's input, so relative errors add:
// 11·3.1e-5 ≈ 3.4e-4 of the logit scale per run, and the runs differ by at
// most twice that. We allow 1e-3·max(1, max|logit|). A thread that skipped or
// repeated rows, a head or a cache position would move logits by O(max|logit|).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/small_batch_linear.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"
#include "tests/model/test_util.h"

namespace mla {
namespace {

constexpr float kRelTol = 1e-3f;
constexpr int kPrompt = 5, kSteps = 40;

struct Case {
  const char* name;
  AttentionKind attention;
  DecodeMode mode;
};

ModelConfig Config(AttentionKind attention) {
  ModelConfig c;
  c.attention = attention;
  c.vocab_size = 512;
  c.context_length = 64;
  c.n_layer = 2;
  c.d_model = 128;
  c.n_head = 4;
  c.kv_rank = 64;
  c.rope_dim = 16;
  c.mlp_ratio = 4;
  return c;
}

std::unique_ptr<Decoder> MakeDecoder(GptModel& model, CpuKernels& kernels, DecodeMode mode) {
  DecoderOptions o;
  o.max_batch = 1;
  o.max_rows = kPrompt;
  o.mode = mode;
  auto dec_or = Decoder::Create(model, &kernels, o);
  CHECK(dec_or.ok()) << dec_or.status();
  return std::move(*dec_or);
}

// One Forward of `dec` at `threads`; its logits (one row) copied out.
std::vector<float> Step(Decoder& dec, const DecodeSegment& seg, int threads) {
  omp_set_num_threads(threads);
  dec.Forward({&seg, 1}, false);
  return std::vector<float>(dec.logits(), dec.logits() + dec.config().vocab_size);
}

int32_t Argmax(const std::vector<float>& l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

class ThreadedDecodeTest : public ::testing::TestWithParam<Case> {};

TEST_P(ThreadedDecodeTest, TwoThreadsDecodeLikeOne) {
  const ModelConfig cfg = Config(GetParam().attention);
  // The head is split across threads (the property under test).
  ASSERT_GE(int64_t{cfg.vocab_size} * cfg.d_model * 4, kSmallBatchThreadMinBytes);
  CpuKernels kernels;
  auto model_or = GptModel::Create(cfg, &kernels);
  ASSERT_TRUE(model_or.ok()) << model_or.status();
  GptModel& model = **model_or;
  model.InitParameters(23);
  // std 0.2 instead of 0.02: attention far from uniform, logits spread out.
  for (const ParamSpec& s : model.layout().params)
    if (s.init == ParamSpec::Init::kNormal)
      for (int64_t i = 0; i < s.numel; ++i) model.params()[s.offset + i] *= 10.0f;

  // Two decoders in lockstep, one at 1 thread and one at 2, both fed the
  // 1-thread greedy token, so every step is compared even after a near tie.
  const int saved = omp_get_max_threads();
  std::unique_ptr<Decoder> one = MakeDecoder(model, kernels, GetParam().mode);
  std::unique_ptr<Decoder> two = MakeDecoder(model, kernels, GetParam().mode);
  const int V = cfg.vocab_size;
  const std::vector<int32_t> prompt = testing::RandomTokens(kPrompt, V, 5);
  const DecodeSegment seg{0, kPrompt, prompt.data()};
  std::vector<float> a = Step(*one, seg, 1), b = Step(*two, seg, 2);
  int compared = 0;
  for (int t = 0; t < kSteps; ++t) {
    float scale = 1.0f;
    for (float v : a) scale = std::max(scale, std::fabs(v));
    const float tol = kRelTol * scale;
    for (int v = 0; v < V; ++v) ASSERT_NEAR(a[v], b[v], tol) << "step " << t << " token " << v;
    // The same greedy token unless the top two logits are within the
    // tolerance (then either choice is a correct float32 result).
    std::vector<float> top(a);
    std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
    const int32_t next = Argmax(a);
    if (top[0] - top[1] > 2 * tol) {
      ASSERT_EQ(next, Argmax(b)) << "step " << t;
      ++compared;
    }
    const DecodeSegment step{0, 1, &next};
    a = Step(*one, step, 1);
    b = Step(*two, step, 2);
  }
  omp_set_num_threads(saved);
  EXPECT_GE(compared, 32) << "too few steps without a near tie: choose another seed";
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ThreadedDecodeTest,
    ::testing::Values(Case{"mha", AttentionKind::kMha, DecodeMode::kAbsorbed},
                      Case{"mla_rope_absorbed", AttentionKind::kMlaRope, DecodeMode::kAbsorbed},
                      Case{"mla_rope_naive", AttentionKind::kMlaRope, DecodeMode::kNaive},
                      Case{"mla_naive", AttentionKind::kMla, DecodeMode::kNaive}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mla
