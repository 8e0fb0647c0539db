// The model on a non-host device, checked without a GPU: GptModel on
// FakeDeviceKernels (tests/device/fake_device_kernels.h: CPU compute behind
// memory that host code cannot touch, is_host() false) must give the host
// path's losses, gradients, logits and updated parameters bit for bit (the
// same kernels run on the same values in the same order), move only token
// ids per micro-batch, free all it allocated, and allocate exactly what the
// memory plan (runtime/memory_plan.h) says.
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "optim/adamw.h"
#include "runtime/gpt_model.h"
#include "runtime/memory_plan.h"
#include "runtime/training_device.h"
#include "tests/device/fake_device_kernels.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

using testing::FakeDeviceKernels;

using Batch = testing::TokenBatch;

Batch MakeBatch(const ModelConfig& cfg, int B, int T, uint64_t seed) {
  return testing::MakeTokenBatch(cfg.vocab_size, B, T, seed);
}

std::unique_ptr<GptModel> MakeModel(const ModelConfig& cfg, Kernels* kernels) {
  auto model = GptModel::Create(cfg, kernels);
  CHECK(model.ok()) << model.status();
  (*model)->InitParameters(7);
  return std::move(*model);
}

// Runs `steps` optimizer steps of `accum` micro-batches, AdamW on host copies
// of the parameters and gradients (the model's own buffers stay where they
// are). Returns the losses.
std::vector<double> Train(GptModel& model, int steps, int accum, int B, int T) {
  const std::vector<DecaySegment> segments = DecaySegments(model.layout());
  AdamWConfig ac;
  ac.weight_decay = 0.1f;
  AdamW opt = *AdamW::Create(ac, ElementRange{0, model.num_params()}, segments);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    model.ZeroGrads();
    for (int a = 0; a < accum; ++a) {
      const Batch b = MakeBatch(model.config(), B, T, 100 + s * accum + a);
      losses.push_back(model.Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T * accum)));
      model.Backward(b.in.data(), B, T);
    }
    std::vector<float> p = model.ParamsToHost(), g = model.GradsToHost();
    opt.Step(p.data(), g.data(), 1e-2f);
    model.LoadParamsFromHost(p.data(), 0, model.num_params());
  }
  return losses;
}

class DevicePathModelTest : public ::testing::TestWithParam<testing::NamedConfig> {};

TEST_P(DevicePathModelTest, ForwardBackwardEqualHostBitForBit) {
  const ModelConfig cfg = GetParam().config;
  const int B = 2, T = 7;
  CpuKernels host_kernels, inner;
  FakeDeviceKernels device(&inner);
  auto host = MakeModel(cfg, &host_kernels);
  auto dev = MakeModel(cfg, &device);
  EXPECT_TRUE(device.IsDevice(dev->params()));
  EXPECT_TRUE(device.IsDevice(dev->grads()));
  EXPECT_EQ(host->ParamsToHost(), dev->ParamsToHost()) << "InitParameters differs";

  const Batch b = MakeBatch(cfg, B, T, 3);
  host->ZeroGrads();
  dev->ZeroGrads();
  const double lh = host->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  const double ld = dev->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  EXPECT_EQ(lh, ld);
  host->Backward(b.in.data(), B, T);
  dev->Backward(b.in.data(), B, T);
  EXPECT_EQ(host->GradsToHost(), dev->GradsToHost());

  // Evaluation keeps the logits; they come back through LogitsToHost.
  EXPECT_EQ(host->Forward(b.in.data(), nullptr, B, T), dev->Forward(b.in.data(), nullptr, B, T));
  const std::vector<float> logits = dev->LogitsToHost();
  ASSERT_EQ(logits.size(), static_cast<size_t>(B * T * cfg.vocab_size));
  EXPECT_EQ(host->LogitsToHost(), logits);
}

TEST_P(DevicePathModelTest, TrainingStepsEqualHostBitForBit) {
  const ModelConfig cfg = GetParam().config;
  CpuKernels host_kernels, inner;
  FakeDeviceKernels device(&inner);
  auto host = MakeModel(cfg, &host_kernels);
  auto dev = MakeModel(cfg, &device);
  const std::vector<double> lh = Train(*host, 3, 2, 2, 7);
  const std::vector<double> ld = Train(*dev, 3, 2, 2, 7);
  EXPECT_EQ(lh, ld);
  EXPECT_EQ(host->ParamsToHost(), dev->ParamsToHost());
}

TEST_P(DevicePathModelTest, AMicroBatchMovesOnlyTokenIds) {
  const ModelConfig cfg = GetParam().config;
  const int B = 2, T = 7;
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  auto dev = MakeModel(cfg, &device);
  dev->Reserve(B, T);
  const Batch b = MakeBatch(cfg, B, T, 3);
  device.ResetCounts();
  dev->ZeroGrads();
  dev->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  dev->Backward(b.in.data(), B, T);
  const FakeDeviceKernels::Counts& c = device.counts();
  // Forward uploads inputs and targets, Backward the inputs again.
  EXPECT_EQ(c.to_device, 3);
  EXPECT_EQ(c.bytes_to_device, 3 * B * T * static_cast<int64_t>(sizeof(int32_t)));
  EXPECT_EQ(c.to_host, 0);
  EXPECT_EQ(c.allocations, 0) << "buffers are sized by Reserve, not per call";
  EXPECT_GT(c.compute_calls, 0);
}

TEST_P(DevicePathModelTest, FusedGeluEpiloguesMatchTheUnfusedBlock) {
  // The fused backward order (LinearBackwardDGelu) on CPU arithmetic: the
  // same products and sums as the unfused order, so gradients agree to
  // float32 rounding of one reduction of length ≤ mlp hidden = 4·C: we allow
  // 4·hidden·ε relative to the largest gradient.
  const ModelConfig cfg = GetParam().config;
  const int B = 2, T = 7;
  CpuKernels host_kernels, inner;
  FakeDeviceKernels fused(&inner, /*fused_gelu=*/true);
  auto host = MakeModel(cfg, &host_kernels);
  auto dev = MakeModel(cfg, &fused);
  const Batch b = MakeBatch(cfg, B, T, 3);
  host->ZeroGrads();
  dev->ZeroGrads();
  const double lh = host->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  const double ld = dev->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  EXPECT_EQ(lh, ld) << "LinearGeluForward's default is the unfused forward";
  host->Backward(b.in.data(), B, T);
  dev->Backward(b.in.data(), B, T);
  const std::vector<float> gh = host->GradsToHost(), gd = dev->GradsToHost();
  float gmax = 0;
  for (float g : gh) gmax = std::max(gmax, std::fabs(g));
  const double tol = 4.0 * cfg.mlp_ratio * cfg.d_model * std::numeric_limits<float>::epsilon() * gmax;
  for (size_t i = 0; i < gh.size(); ++i) ASSERT_NEAR(gh[i], gd[i], tol) << "element " << i;
}

TEST_P(DevicePathModelTest, MemoryPlanEqualsWhatTheModelAllocates) {
  // Parameters and gradients when the model is created, activations when it
  // reserves for a micro-batch, byte for byte as the fake device records
  // them; a training step then allocates nothing. (Kernel scratch, the peak
  // measurement and the workspace are CudaKernels' own memory.)
  const ModelConfig cfg = GetParam().config;
  const int B = 2, T = 7;
  MemoryPlanOptions o;
  o.micro_batch = B;
  o.seq_len = T;
  const absl::StatusOr<MemoryPlan> plan = ComputeMemoryPlan(cfg, o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  auto dev = MakeModel(cfg, &device);
  EXPECT_EQ(device.live_bytes(), plan->parameter_bytes + plan->gradient_bytes);
  dev->Reserve(B, T);
  const int64_t model_bytes = plan->parameter_bytes + plan->gradient_bytes + plan->activation_bytes;
  EXPECT_EQ(device.live_bytes(), model_bytes);
  const Batch b = MakeBatch(cfg, B, T, 3);
  dev->ZeroGrads();
  dev->Forward(b.in.data(), b.tg.data(), B, T, 1.0f / (B * T));
  dev->Backward(b.in.data(), B, T);
  EXPECT_EQ(device.peak_bytes(), model_bytes);
}

TEST(DevicePathModel, PeakMeasurementHoldsWhatThePlanCounts) {
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  const int64_t n = 48;
  EXPECT_GT(MeasureGemmPeakGflops(device, n), 0.0);
  EXPECT_EQ(device.peak_bytes(), PeakMeasurementBytes(n, Precision::kFp32));
  EXPECT_EQ(device.live_bytes(), 0) << "the operands are freed on return";
}

TEST(DevicePathModel, EveryAllocationIsFreed) {
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  {
    auto dev = MakeModel(testing::SmallConfigs()[3].config, &device);
    dev->Reserve(2, 7);
    EXPECT_GT(device.live_allocations(), 0);
  }
  EXPECT_EQ(device.live_allocations(), 0);
  EXPECT_EQ(device.counts().allocations, device.counts().frees);
}

TEST(DevicePathModelDeathTest, HostReadsOfDeviceMemoryAreCaught) {
  // The guard the tests above rely on: touching a parameter from the host
  // instead of through a copy dies.
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  auto dev = MakeModel(testing::SmallConfigs()[0].config, &device);
  EXPECT_DEATH({ volatile float x = dev->params()[0]; (void)x; }, "");
  std::vector<int32_t> host_tokens(7, 1);
  // A host token array handed to a kernel (instead of an uploaded one) fails.
  EXPECT_DEATH(device.EmbeddingForward(host_tokens.data(), dev->params(), nullptr, dev->grads(),
                                       1, 7, dev->config().d_model),
               "host or null pointer");
}

INSTANTIATE_TEST_SUITE_P(AllKinds, DevicePathModelTest, ::testing::ValuesIn(testing::SmallConfigs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla
