// CudaKernels' decoding kernels against CpuKernels' on the same inputs, and a
// whole KV-cached generation (prefill of several segments, then decode steps)
// with the model and the decoder on the GPU against the same on the host.
// Run when a GPU is visible, skip with a message otherwise.
//
// Tolerances. Gathers and appends move values: exact. RoPE: each side is
// within 4u·(|x0|+|x1|) of the exact rotation (cos/sin rounded to fp32, two
// products, a sum), so they differ by at most twice that. Cache attention:
// tests/layers/decode_test_util.h bounds each side's distance to the exact
// value by `tol` (first-order fp32 bound of any summation order), so the two
// differ by at most 2·tol. Whole step: the derivation of
// tests/runtime/decoder_test.cc (two fp32 evaluations of the same function in
// different orders differ by at most 8.4e-5 of the logit scale for these
// sizes) gives 1e-4·max(1, max|logit|).
//
// The whole-step test relies on GptModel keeping its parameters in its
// kernels' memory (params() is a device pointer for a model created on
// CudaKernels).
#include <cuda_runtime.h>

#include <cmath>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/cuda/elementwise.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"
#include "tests/layers/decode_test_util.h"
#include "tests/runtime/model_test_util.h"

namespace mla::cuda {
namespace {

using mla::testing::kU;
using mla::testing::Random;
using mla::testing::Seg;
using mla::testing::Tables;

template <typename T>
class Dev {
 public:
  Dev(Kernels* k, const std::vector<T>& host) : a_(k, static_cast<int64_t>(host.size())) {
    a_.CopyFromHost(host.data(), static_cast<int64_t>(host.size()));
  }
  T* get() { return a_.data(); }
  std::vector<T> Host() const { return a_.ToHost(); }

 private:
  DeviceArray<T> a_;
};

// The tables of `t` on the GPU, and a batch pointing at them.
struct DevTables {
  DevTables(Kernels* k, const Tables& t)
      : slot(k, t.slot), row0(k, t.row0), pos0(k, t.pos0), pos(k, t.pos) {
    batch = t.batch();
    batch.device = {slot.get(), row0.get(), pos0.get(), pos.get()};
  }
  Dev<int32_t> slot, row0, pos0, pos;
  DecodeBatch batch;
};

const std::vector<Seg> kSegs = {{2, 5, 3}, {0, 1, 9}, {3, 4, 0}};
constexpr int kSlots = 4, kL = 12;

class CudaDecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU decode parity";
    auto k = CudaKernels::Create();
    ASSERT_TRUE(k.ok()) << k.status();
    gpu_ = std::move(*k);
  }
  CpuKernels cpu_;
  std::unique_ptr<CudaKernels> gpu_;
};

TEST_F(CudaDecodeTest, EmbeddingRopeAndAppendMatchCpu) {
  const Tables t(kSegs);
  DevTables dt(gpu_.get(), t);
  const int C = 12, V = 11;
  const auto wte = Random(V * C, 1), wpe = Random(kL * C, 2);
  std::vector<int32_t> tokens(t.M);
  for (int64_t r = 0; r < t.M; ++r) tokens[r] = static_cast<int32_t>((r * 5 + 3) % V);
  std::vector<float> x(t.M * C, 0.0f);
  cpu_.DecodeEmbedding(tokens.data(), wte.data(), wpe.data(), x.data(), C, t.batch());
  Dev<int32_t> d_tokens(gpu_.get(), tokens);
  Dev<float> d_wte(gpu_.get(), wte), d_wpe(gpu_.get(), wpe), d_x(gpu_.get(), x);
  gpu_->DecodeEmbedding(d_tokens.get(), d_wte.get(), d_wpe.get(), d_x.get(), C, dt.batch);
  EXPECT_EQ(d_x.Host(), x);

  // RoPE over 2 heads of 6 dims in rows of C = 12.
  std::vector<float> rot = x;
  cpu_.DecodeRope(rot.data(), C, 2, 6, 10000.0f, t.batch());
  gpu_->DecodeRope(d_x.get(), C, 2, 6, 10000.0f, dt.batch);
  const auto g = d_x.Host();
  for (size_t i = 0; i + 1 < x.size(); i += 2) {
    const double tol = 8 * kU * (std::fabs(x[i]) + std::fabs(x[i + 1]));
    EXPECT_NEAR(g[i], rot[i], tol) << i;
    EXPECT_NEAR(g[i + 1], rot[i + 1], tol) << i;
  }

  // Append columns 2 … 6 of every (CPU-rotated) row into a filled cache:
  // written rows and untouched rows must be bit-equal.
  const int width = 5;
  const auto before = Random(kSlots * kL * width, 3);
  std::vector<float> cache = before;
  cpu_.DecodeCacheAppend(rot.data() + 2, C, width, cache.data(), kL, t.batch());
  Dev<float> d_rot(gpu_.get(), rot), d_cache(gpu_.get(), before);
  gpu_->DecodeCacheAppend(d_rot.get() + 2, C, width, d_cache.get(), kL, dt.batch);
  EXPECT_EQ(d_cache.Host(), cache);
}

void ExpectParity(const std::vector<float>& gpu, const std::vector<float>& cpu,
                  const mla::testing::AttentionRef& ref, const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  int bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i)
    if (std::fabs(static_cast<double>(gpu[i]) - cpu[i]) > 2 * ref.tol[i] && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << gpu[i] << " cpu " << cpu[i] << " tol "
                    << 2 * ref.tol[i];
}

TEST_F(CudaDecodeTest, MhaAttentionMatchesCpu) {
  const Tables t(kSegs);
  DevTables dt(gpu_.get(), t);
  const mla::testing::MhaProblem p(t, kSlots, kL, /*q_offset=*/0);
  const int C = p.C;
  std::vector<float> y(t.M * C, 0.0f);
  cpu_.DecodeAttention(p.in, t.batch(), y.data(), C);
  const auto ref = mla::testing::ReferenceAttention(p.in, t, false, C);
  Dev<float> d_q(gpu_.get(), p.q), d_k(gpu_.get(), p.k), d_v(gpu_.get(), p.v), d_y(gpu_.get(), y);
  const DecodeAttentionViews g = p.Views(d_q.get(), d_k.get(), d_v.get());
  gpu_->DecodeAttention(g, dt.batch, d_y.get(), C);
  ExpectParity(d_y.Host(), y, ref, "mha");
}

void CheckLatent(CpuKernels& cpu, CudaKernels& gpu, bool absorbed, bool rope) {
  const Tables t(kSegs);
  DevTables dt(&gpu, t);
  const mla::testing::LatentProblem p(t, kSlots, kL, rope);
  const int C = p.C;
  std::vector<float> y(t.M * C, 0.0f);
  cpu.DecodeLatentAttention(p.in, t.batch(), absorbed, y.data(), C);
  const auto ref = mla::testing::ReferenceAttention(p.in, t, true, C);
  Dev<float> d_q(&gpu, p.q), d_qr(&gpu, p.q_rope), d_lat(&gpu, p.latent), d_kr(&gpu, p.k_rope),
      d_w(&gpu, p.w), d_y(&gpu, y);
  const DecodeAttentionViews g =
      p.Views(d_q.get(), d_qr.get(), d_lat.get(), d_kr.get(), d_w.get());
  gpu.DecodeLatentAttention(g, dt.batch, absorbed, d_y.get(), C);
  ExpectParity(d_y.Host(), y, ref, absorbed ? "absorbed" : "naive");
}

TEST_F(CudaDecodeTest, AbsorbedLatentAttentionMatchesCpu) { CheckLatent(cpu_, *gpu_, true, false); }
TEST_F(CudaDecodeTest, AbsorbedLatentAttentionWithRotaryKeyMatchesCpu) {
  CheckLatent(cpu_, *gpu_, true, true);
}
TEST_F(CudaDecodeTest, NaiveLatentAttentionMatchesCpu) { CheckLatent(cpu_, *gpu_, false, false); }
TEST_F(CudaDecodeTest, NaiveLatentAttentionWithRotaryKeyMatchesCpu) {
  CheckLatent(cpu_, *gpu_, false, true);
}

// Logits of a prefill of three prompts (slots 1, 3, 0; all logits) and then
// four decode steps of all three, as rows [rows, V] per call.
std::vector<std::vector<float>> RunCalls(Decoder& dec,
                                         const std::vector<std::vector<int32_t>>& seqs,
                                         const int (&prompt)[3]) {
  const int V = dec.config().vocab_size;
  const int slots[3] = {1, 3, 0};
  std::vector<std::vector<float>> out;
  std::vector<DecodeSegment> segs;
  int rows = 0;
  for (int i = 0; i < 3; ++i) {
    segs.push_back({slots[i], prompt[i], seqs[i].data()});
    rows += prompt[i];
  }
  dec.Forward(segs, true);
  out.emplace_back(dec.logits(), dec.logits() + static_cast<size_t>(rows) * V);
  for (int t = 0; t < 4; ++t) {
    segs.clear();
    for (int i = 0; i < 3; ++i) segs.push_back({slots[i], 1, seqs[i].data() + prompt[i] + t});
    dec.Forward(segs, false);
    out.emplace_back(dec.logits(), dec.logits() + static_cast<size_t>(3) * V);
  }
  return out;
}

TEST_F(CudaDecodeTest, GenerationStepsMatchCpuForEveryKindAndMode) {
  for (mla::testing::NamedConfig n : mla::testing::SmallConfigs()) {
    n.config.context_length = 24;
    n.config.vocab_size = 40;
    for (DecodeMode mode : {DecodeMode::kAbsorbed, DecodeMode::kNaive}) {
      if (mode == DecodeMode::kNaive && !n.config.is_mla()) continue;
      SCOPED_TRACE(n.name + " " + std::string(DecodeModeName(mode)));
      auto cpu_model = GptModel::Create(n.config, &cpu_);
      auto gpu_model = GptModel::Create(n.config, gpu_.get());
      ASSERT_TRUE(cpu_model.ok() && gpu_model.ok());
      (*cpu_model)->InitParameters(31);
      (*gpu_model)->InitParameters(31);
      DecoderOptions o;
      o.max_batch = 4;
      o.max_rows = 32;
      o.mode = mode;
      auto cpu_dec = Decoder::Create(**cpu_model, &cpu_, o);
      auto gpu_dec = Decoder::Create(**gpu_model, gpu_.get(), o);
      ASSERT_TRUE(cpu_dec.ok()) << cpu_dec.status();
      ASSERT_TRUE(gpu_dec.ok()) << gpu_dec.status();
      const int prompt[3] = {3, 9, 1};
      std::vector<std::vector<int32_t>> seqs;
      for (int i = 0; i < 3; ++i)
        seqs.push_back(mla::testing::RandomTokens(prompt[i] + 4, 40, 60 + i));
      const auto want = RunCalls(**cpu_dec, seqs, prompt);
      const auto got = RunCalls(**gpu_dec, seqs, prompt);
      ASSERT_EQ(want.size(), got.size());
      for (size_t c = 0; c < want.size(); ++c) {
        float mx = 1.0f;
        for (float v : want[c]) mx = std::max(mx, std::fabs(v));
        ASSERT_EQ(want[c].size(), got[c].size());
        for (size_t i = 0; i < want[c].size(); ++i)
          ASSERT_NEAR(got[c][i], want[c][i], 1e-4f * mx) << "call " << c << " value " << i;
      }
    }
  }
}

TEST_F(CudaDecodeTest, DecoderRefusesAModelOnAnotherDevice) {
  ModelConfig c = mla::testing::SmallConfigs()[0].config;
  auto cpu_model = GptModel::Create(c, &cpu_);
  ASSERT_TRUE(cpu_model.ok());
  auto dec = Decoder::Create(**cpu_model, gpu_.get(), DecoderOptions{});
  ASSERT_FALSE(dec.ok());
  EXPECT_NE(dec.status().message().find("same kernels"), absl::string_view::npos)
      << dec.status();
}

}  // namespace
}  // namespace mla::cuda
