// One whole training step on the GPU against the CPU, for every attention
// kind and option (tests/runtime/model_test_util.h SmallConfigs): two accumulated
// micro-batches of forward and backward, global-norm clipping and AdamW,
// through the CUDA TrainingDevice (CudaKernels, device AdamW with its decay
// mask, SumOfSquares + Scale). Runs when a GPU is visible, skips otherwise.
//
// Tolerances (u = 2⁻²⁴, fp32 unit roundoff): every value is a chain of at most
// S = 2L + 4 reductions (embedding, L blocks of attention and MLP, the head
// and the loss), none longer than K = max(V, 4C, B·T, T·H). Each reduction
// computed in a different order differs by at most 2·K·u relative to the
// magnitudes it sums, so a gradient tensor is compared normwise within
// 2·S·K·u·max|g| of the CPU's, and the loss within 2·S·K·u·|loss|. AdamW is
// compared on identical inputs (the CPU's clipped gradients are copied to
// the GPU first): the update is a few element-wise operations, within
// 8·u·(|p| + lr) per element.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/elementwise.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "runtime/gpt_model.h"
#include "runtime/training_device.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

constexpr double kU = 1.0 / (1 << 24);

using Batch = testing::TokenBatch;

Batch MakeBatch(const ModelConfig& cfg, int B, int T, uint64_t seed) {
  return testing::MakeTokenBatch(cfg.vocab_size, B, T, seed);
}

double ForwardBackward(GptModel& model, int B, int T, int accum) {
  model.ZeroGrads();
  double loss = 0;
  for (int a = 0; a < accum; ++a) {
    const Batch b = MakeBatch(model.config(), B, T, 40 + a);
    loss += model.Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T * accum));
    model.Backward(b.in.data(), B, T);
  }
  return loss / accum;
}

class CudaTrainingStepTest : public ::testing::TestWithParam<testing::NamedConfig> {
 protected:
  void SetUp() override {
    if (!cuda::DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU training";
  }
};

TEST_P(CudaTrainingStepTest, WholeStepMatchesCpuWithinRounding) {
  const ModelConfig cfg = GetParam().config;
  const int B = 2, T = cfg.context_length, accum = 2;
  const float lr = 1e-2f, max_norm = 0.05f;  // small enough that clipping scales
  LocalCommunicator local;
  auto device_or = CreateCudaTrainingDevice(&local, Precision::kFp32);
  ASSERT_TRUE(device_or.ok()) << device_or.status();
  TrainingDevice& gpu = **device_or;
  CpuKernels cpu_kernels;
  auto cpu = *GptModel::Create(cfg, &cpu_kernels);
  auto dev = *GptModel::Create(cfg, &gpu.kernels());
  cpu->InitParameters(5);
  dev->InitParameters(5);
  ASSERT_EQ(cpu->ParamsToHost(), dev->ParamsToHost()) << "initialisation is computed on the host";

  const int64_t S = 2 * cfg.n_layer + 4;
  const int64_t K = std::max<int64_t>({cfg.vocab_size, 4 * cfg.d_model, B * T, T * cfg.n_head});
  const double chain = 2.0 * S * K * kU;
  const double loss_c = ForwardBackward(*cpu, B, T, accum);
  const double loss_g = ForwardBackward(*dev, B, T, accum);
  EXPECT_NEAR(loss_g, loss_c, chain * loss_c);

  const std::vector<float> gc = cpu->GradsToHost(), gg = dev->GradsToHost();
  for (const ParamSpec& p : cpu->layout().params) {
    double mx = 0;
    for (int64_t i = 0; i < p.numel; ++i) mx = std::max(mx, std::fabs(double{gc[p.offset + i]}));
    int reported = 0;
    for (int64_t i = 0; i < p.numel; ++i)
      if (std::fabs(double{gg[p.offset + i]} - gc[p.offset + i]) > chain * mx && reported++ < 3)
        ADD_FAILURE() << p.name << "[" << i << "]: gpu " << gg[p.offset + i] << " cpu "
                      << gc[p.offset + i] << " tol " << chain * mx;
  }

  const int64_t n = cpu->num_params();
  std::vector<float> clipped = gc;
  auto clip_c = ClipGradNorm(absl::MakeSpan(clipped), max_norm, nullptr);
  auto clip_g = gpu.ClipGradNorm(dev->grads(), n, max_norm, nullptr);
  ASSERT_TRUE(clip_c.ok() && clip_g.ok());
  EXPECT_NEAR(clip_g->norm, clip_c->norm, chain * clip_c->norm);
  ASSERT_LT(clip_c->scale, 1.0f);
  EXPECT_NEAR(clip_g->scale, clip_c->scale, chain * clip_c->scale);
  const std::vector<float> gg_clipped = dev->GradsToHost();
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(gg_clipped[i], gg[i] * clip_g->scale, 2 * kU * std::fabs(gg[i])) << i;

  // AdamW on identical inputs: the CPU's parameters and clipped gradients.
  const std::vector<DecaySegment> segments = DecaySegments(cpu->layout());
  AdamWConfig ac;
  ac.weight_decay = 0.1f;
  AdamW opt = *AdamW::Create(ac, ElementRange{0, n}, segments);
  ASSERT_TRUE(gpu.CreateOptimizer(ac, ElementRange{0, n}, segments).ok());
  gpu.kernels().CopyToDevice(dev->grads(), clipped.data(), n * sizeof(float));
  std::vector<float> p = cpu->ParamsToHost();
  for (int step = 0; step < 2; ++step) {  // the second step sees non-zero moments
    opt.Step(p.data(), clipped.data(), lr);
    gpu.OptimizerStep(dev->params(), dev->grads(), lr);
  }
  EXPECT_EQ(gpu.optimizer_step(), 2);
  const std::vector<float> pg = dev->ParamsToHost();
  std::vector<float> staging;
  const absl::Span<const float> mg = gpu.MomentsOnHost(AdamMoment::kM, 0, n, &staging);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(pg[i], p[i], 8 * kU * (std::fabs(p[i]) + lr)) << "parameter " << i;
    ASSERT_NEAR(mg[i], opt.m()[i], 8 * kU * std::fabs(opt.m()[i])) << "first moment " << i;
  }
}

TEST(CudaTrainingDevice, UsesDeviceMemoryAndFusedGeluEpilogues) {
  if (!cuda::DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU training";
  LocalCommunicator local;
  auto device = CreateCudaTrainingDevice(&local, Precision::kFp32);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE((*device)->kernels().fuses_gelu_epilogues());
  EXPECT_FALSE((*device)->kernels().is_host());
}

INSTANTIATE_TEST_SUITE_P(AllKinds, CudaTrainingStepTest,
                         ::testing::ValuesIn(testing::SmallConfigs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla
