// The KV-cached decoder against the model's full forward pass, for every
// attention kind and option (query compression, latent norm, untied head) and
// both MLA decode modes.
//
// Tolerance. The cached path computes the same real function as
// GptModel::Forward in float32 but sums in another order (and, absorbed,
// associates (q·W_uk)·c instead of q·(W_uk·c)). A float32 inner product of
// length K is exact to within γ_K·Σ|a_i·b_i|, γ_K ≈ K·u, u = 2⁻²⁴. The longest
// here is the MLP's K = 4C = 64, so each product is good to 64·u ≈ 3.8e-6 of
// its absolute-value sum. A logit passes through 2 products per attention
// (3 with the latent: x→c→k, q̃), 2 per MLP, one head: 2 layers → at most 11
// chained products; LayerNorm renormalises every block's input, so relative
// errors add rather than multiply: 11·3.8e-6 ≈ 4.2e-5 of the logit scale. The
// cached and the full path each carry at most that error, so they differ by
// at most 2·4.2e-5 ≈ 8.4e-5; we allow 1e-4·max(1, max|logit|) (observed
// differences are ~2e-6). A wrong position, a missing rotary or bias term or a stale cache row moves
// logits by O(max|logit|).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

constexpr float kRelTol = 1e-4f;

struct Case {
  testing::NamedConfig named;
  DecodeMode mode;
};

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (testing::NamedConfig n : testing::SmallConfigs()) {
    n.config.context_length = 24;
    n.config.vocab_size = 40;
    out.push_back({n, DecodeMode::kAbsorbed});
    if (n.config.is_mla()) out.push_back({n, DecodeMode::kNaive});
  }
  return out;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return info.param.named.name + "_" + std::string(DecodeModeName(info.param.mode));
}

// GPT-2 init with every normally-initialised tensor scaled by 10 (std 0.2), so
// attention is far from uniform and logits spread over several units.
std::unique_ptr<GptModel> MakeModel(const ModelConfig& cfg, Kernels* kernels, uint64_t seed) {
  auto model_or = GptModel::Create(cfg, kernels);
  CHECK(model_or.ok()) << model_or.status();
  std::unique_ptr<GptModel> model = std::move(*model_or);
  model->InitParameters(seed);
  for (const ParamSpec& s : model->layout().params)
    if (s.init == ParamSpec::Init::kNormal)
      for (int64_t i = 0; i < s.numel; ++i) model->params()[s.offset + i] *= 10.0f;
  return model;
}

float MaxAbs(const float* x, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// Logits [T, V] of the full forward pass over `tokens`.
std::vector<float> FullLogits(GptModel& model, const std::vector<int32_t>& tokens) {
  const int T = static_cast<int>(tokens.size()), V = model.config().vocab_size;
  model.Forward(tokens.data(), nullptr, 1, T);
  return std::vector<float>(model.logits(), model.logits() + static_cast<size_t>(T) * V);
}

// Logits [T, V] from the decoder: `prefill` tokens in one call (all logits),
// then one token per call, in slot `slot`.
std::vector<float> CachedLogits(Decoder& dec, const std::vector<int32_t>& tokens, int prefill,
                                int slot = 0) {
  const int V = dec.config().vocab_size;
  std::vector<float> out;
  dec.cache().Clear(slot);
  DecodeSegment seg{slot, prefill, tokens.data()};
  dec.Forward({&seg, 1}, true);
  out.insert(out.end(), dec.logits(), dec.logits() + static_cast<size_t>(prefill) * V);
  for (size_t t = prefill; t < tokens.size(); ++t) {
    DecodeSegment one{slot, 1, tokens.data() + t};
    dec.Forward({&one, 1}, false);
    out.insert(out.end(), dec.logits(), dec.logits() + V);
  }
  return out;
}

void ExpectClose(const std::vector<float>& want, const std::vector<float>& got, int V) {
  ASSERT_EQ(want.size(), got.size());
  const float tol = kRelTol * std::max(1.0f, MaxAbs(want.data(), want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], got[i], tol) << "position " << i / V << " token " << i % V;
}

class DecoderTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    model_ = MakeModel(GetParam().named.config, &kernels_, 17);
    DecoderOptions o;
    o.max_batch = 4;
    o.max_rows = 32;
    o.mode = GetParam().mode;
    auto dec = Decoder::Create(*model_, &kernels_, o);
    ASSERT_TRUE(dec.ok()) << dec.status();
    decoder_ = std::move(*dec);
  }
  int V() const { return model_->config().vocab_size; }

  CpuKernels kernels_;
  std::unique_ptr<GptModel> model_;
  std::unique_ptr<Decoder> decoder_;
};

TEST_P(DecoderTest, CachedLogitsEqualFullForwardAtEveryPosition) {
  const std::vector<int32_t> tokens = testing::RandomTokens(24, V(), 3);
  const std::vector<float> want = FullLogits(*model_, tokens);
  // Spread check: the fixture is only meaningful if logits differ by units.
  ASSERT_GT(MaxAbs(want.data(), want.size()), 1.0f);
  ExpectClose(want, CachedLogits(*decoder_, tokens, 5), V());
}

TEST_P(DecoderTest, TokenByTokenFromTheFirstPositionEqualsFullForward) {
  const std::vector<int32_t> tokens = testing::RandomTokens(13, V(), 4);
  ExpectClose(FullLogits(*model_, tokens), CachedLogits(*decoder_, tokens, 1, 3), V());
}

TEST_P(DecoderTest, BatchOfDifferentLengthsDecodesLikeEachAlone) {
  const std::vector<int> prompt_len = {3, 9, 1};
  const int steps = 6;
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<float>> alone;
  for (int i = 0; i < 3; ++i) {
    seqs.push_back(testing::RandomTokens(prompt_len[i] + steps, V(), 40 + i));
    alone.push_back(CachedLogits(*decoder_, seqs[i], prompt_len[i], 0));
  }
  // Together: the three prompts in one call (slots 1, 3, 0), then decode steps
  // with all three rows in each call.
  const int slots[3] = {1, 3, 0};
  for (int s : slots) decoder_->cache().Clear(s);
  std::vector<DecodeSegment> segs;
  for (int i = 0; i < 3; ++i) segs.push_back({slots[i], prompt_len[i], seqs[i].data()});
  decoder_->Forward(segs, true);
  std::vector<std::vector<float>> together(3);
  int row = 0;
  for (int i = 0; i < 3; ++i) {
    const float* l = decoder_->logits() + static_cast<size_t>(row) * V();
    together[i].assign(l, l + static_cast<size_t>(prompt_len[i]) * V());
    row += prompt_len[i];
  }
  for (int t = 0; t < steps; ++t) {
    segs.clear();
    for (int i = 0; i < 3; ++i) segs.push_back({slots[i], 1, seqs[i].data() + prompt_len[i] + t});
    decoder_->Forward(segs, false);
    for (int i = 0; i < 3; ++i) {
      const float* l = decoder_->logits() + static_cast<size_t>(i) * V();
      together[i].insert(together[i].end(), l, l + V());
    }
  }
  for (int i = 0; i < 3; ++i) ExpectClose(alone[i], together[i], V());
}

TEST_P(DecoderTest, CacheAndLogitsAreNotReallocatedWhileDecoding) {
  const std::vector<int32_t> tokens = testing::RandomTokens(20, V(), 5);
  const KvPart part = model_->config().is_mla() ? KvPart::kLatent : KvPart::kKey;
  const float* row = decoder_->cache().Row(1, 2, part, 0);
  const float* logits = decoder_->logits();
  CachedLogits(*decoder_, tokens, 2, 2);
  EXPECT_EQ(row, decoder_->cache().Row(1, 2, part, 0));
  EXPECT_EQ(logits, decoder_->logits());
  EXPECT_EQ(decoder_->cache().length(2), 20);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, DecoderTest, ::testing::ValuesIn(AllCases()), CaseName);

class AbsorbedVsNaiveTest : public ::testing::TestWithParam<testing::NamedConfig> {};

TEST_P(AbsorbedVsNaiveTest, AbsorbedLogitsEqualNaiveExpansion) {
  ModelConfig cfg = GetParam().config;
  cfg.context_length = 24;
  cfg.vocab_size = 40;
  CpuKernels kernels;
  auto model = MakeModel(cfg, &kernels, 23);
  DecoderOptions o;
  o.max_batch = 2;
  o.mode = DecodeMode::kAbsorbed;
  auto absorbed = Decoder::Create(*model, &kernels, o);
  o.mode = DecodeMode::kNaive;
  auto naive = Decoder::Create(*model, &kernels, o);
  ASSERT_TRUE(absorbed.ok() && naive.ok());
  const std::vector<int32_t> tokens = testing::RandomTokens(24, cfg.vocab_size, 8);
  ExpectClose(CachedLogits(**naive, tokens, 4), CachedLogits(**absorbed, tokens, 4),
              cfg.vocab_size);
}

std::vector<testing::NamedConfig> MlaConfigs() {
  std::vector<testing::NamedConfig> out;
  for (const auto& n : testing::SmallConfigs())
    if (n.config.is_mla()) out.push_back(n);
  return out;
}

INSTANTIATE_TEST_SUITE_P(MlaKinds, AbsorbedVsNaiveTest, ::testing::ValuesIn(MlaConfigs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla
