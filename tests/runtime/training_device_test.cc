// The CPU training device's MFU peak (runtime/training_device.h): the GEMM
// shapes it times are the model's, and no training step runs faster than the
// peak measured before it in the same process, so MFU cannot exceed 100 %.
#include "runtime/training_device.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "comm/local_communicator.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "runtime/gpt_model.h"
#include "runtime/parameter_layout.h"
#include "runtime/random.h"

namespace mla {
namespace {

std::vector<LinearShape> Sorted(std::vector<LinearShape> v) {
  std::sort(v.begin(), v.end(), [](const LinearShape& a, const LinearShape& b) {
    return a.N != b.N ? a.N < b.N : a.K < b.K;
  });
  return v;
}

// The quickstart recipe's shape (recipes/cpu/quickstart.flags).
ModelConfig Quickstart() {
  absl::StatusOr<ModelConfig> c = ParseModelConfigSpec(
      "attention=mla_rope,n_layer=4,d_model=128,n_head=4,context_length=128,kv_rank=64,"
      "rope_dim=16,vocab_size=4096",
      ModelConfig{}, {});
  CHECK(c.ok()) << c.status();
  return *c;
}

// docs/model.md, by hand: MLA+RoPE without query compression runs
// x·W_qᵀ [C,C], x·W_qrᵀ [H·P,C], x·W_dkvᵀ [R,C], c_kv·[W_uk;W_uv]ᵀ [2C,R],
// x·W_krᵀ [P,C], y·W_oᵀ [C,C], the MLP [4C,C] and [C,4C], and the LM head
// [V,C] (W_qr and W_dkv share [64,128] here, one shape); MHA runs [3C,C], [C,C], the MLP and the head (its position table is
// a lookup).
TEST(TrainingLinearShapesTest, AreTheGemmsOfTheModelsLinears) {
  ModelConfig c = Quickstart();
  EXPECT_EQ(Sorted(TrainingLinearShapes(c)),
            Sorted({{128, 128}, {64, 128}, {256, 64}, {16, 128}, {512, 128},
                    {128, 512}, {4096, 128}}));
  c.attention = AttentionKind::kMha;
  EXPECT_EQ(Sorted(TrainingLinearShapes(c)),
            Sorted({{384, 128}, {128, 128}, {512, 128}, {128, 512}, {4096, 128}}));
}

// The bound MFU rests on: the fastest of a few full training steps (zero
// grads, forward, backward, AdamW) of the quickstart model does at most the
// peak's FLOP rate in model FLOPs (ComputeModelCost), at the same threads.
// The step also runs non-GEMM kernels, so it stays below the GEMMs' best
// rate with room; a peak measured on a too-small, too-large or cache-aliased
// GEMM (the 1536² sgemm with unpadded rows this replaces ran at a fraction of
// the model's GEMMs here) fails it.
TEST(CpuTrainingDeviceTest, NoTrainingStepBeatsTheMeasuredPeak) {
  LocalCommunicator comm;
  std::unique_ptr<TrainingDevice> device = CreateCpuTrainingDevice(&comm);
  const ModelConfig c = Quickstart();
  const int B = 16, T = c.context_length;
  const double peak = device->MeasurePeakGflops(c, int64_t{B} * T);
  ASSERT_GT(peak, 0.0);

  auto model = GptModel::Create(c, &device->kernels());
  ASSERT_TRUE(model.ok()) << model.status();
  GptModel& m = **model;
  m.InitParameters(1);
  ASSERT_TRUE(device->CreateOptimizer(AdamWConfig{}, ElementRange{0, m.num_params()},
                                      DecaySegments(m.layout()))
                  .ok());
  std::vector<int32_t> in(static_cast<size_t>(B) * T), tg(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    in[i] = static_cast<int32_t>(UniformAt(3, 1, i) * c.vocab_size) % c.vocab_size;
    tg[i] = static_cast<int32_t>(UniformAt(3, 2, i) * c.vocab_size) % c.vocab_size;
  }
  double fastest = 1e30;
  for (int step = 0; step < 4; ++step) {  // step 0 warms up
    const auto t0 = std::chrono::steady_clock::now();
    m.ZeroGrads();
    m.Forward(in.data(), tg.data(), B, T, 1.0f / (B * T));
    m.Backward(in.data(), B, T);
    device->OptimizerStep(m.params(), m.grads(), 1e-4f);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step > 0) fastest = std::min(fastest, s);
  }
  const double achieved = ComputeModelCost(c).train_flops_per_token * B * T / fastest / 1e9;
  EXPECT_LE(achieved, peak) << "MFU of the fastest step " << 100 * achieved / peak << " %";
}

}  // namespace
}  // namespace mla
