// Memory-plan arithmetic on a configuration small enough to count by hand:
// mha, V=16, T=4, L=1, C=8, H=2, mlp_ratio 4 (hidden 32), tied, one sequence
// (M = 4 rows).
//   parameters: wte 128 + wpe 32 + ln1 16 + w_qkv 192 + b_qkv 24 + w_o 64 +
//               b_o 8 + ln2 16 + w_fc 256 + b_fc 32 + w_proj 256 + b_proj 8 +
//               ln_f 16 = 1048
//   optimizer:  m and v (4 bytes each) and the decay mask (1 byte) per
//               value = 9 bytes a value
//   activations (values): block ln1/x_mid/ln2 96, fc_pre/fc_act 256, y 32,
//               probs 32, qkv 96 = 512; LN stats 16; shared scratch d_ln 32,
//               d_fc 128, d_y 32, d_qkv 96 = 288; residuals 64 + ln_f/d_lnf/
//               d_res 96 = 160; ln_f stats 8; logits 64; token ids 8
//               → 1056 values
//   kernel scratch (values): d_scores 32 + bias gradient 32 + row loss 4 = 68
//   measurement: three fp32 4096×4096 operands (192 MiB); bf16 adds two
//               bf16 copies (64 MiB)
#include "runtime/memory_plan.h"

#include "gtest/gtest.h"
#include "runtime/gpt_model.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

ModelConfig Tiny() {
  return testing::MakeConfig(AttentionKind::kMha, {.vocab_size = 16, .context_length = 4,
                                                   .n_layer = 1, .d_model = 8, .n_head = 2,
                                                   .mlp_ratio = 4});
}

MemoryPlanOptions NoWorkspace() {
  MemoryPlanOptions o;
  o.workspace_bytes = 0;
  return o;
}

constexpr int64_t kMeasurementFp32 = int64_t{192} << 20;

TEST(MemoryPlanTest, ActivationBytesMatchHandCount) {
  EXPECT_EQ(GptModel::ActivationBytes(Tiny(), 1, 4), 1056 * 4);
}

TEST(MemoryPlanTest, Fp32PlanCountsFourBytesPerValue) {
  auto plan = ComputeMemoryPlan(Tiny(), NoWorkspace());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->parameter_bytes, 1048 * 4);
  EXPECT_EQ(plan->gradient_bytes, 1048 * 4);
  EXPECT_EQ(plan->optimizer_bytes, 1048 * 9);
  EXPECT_EQ(plan->activation_bytes, 1056 * 4);
  EXPECT_EQ(plan->kernel_scratch_bytes, 68 * 4);
  EXPECT_EQ(plan->measurement_bytes, kMeasurementFp32);
  EXPECT_EQ(plan->total_bytes(), 1048 * 17 + (1056 + 68) * 4 + kMeasurementFp32);
}

TEST(MemoryPlanTest, Bf16AddsTheWeightCopyAndTheMeasurementsOperandCopies) {
  MemoryPlanOptions o = NoWorkspace();
  o.precision = Precision::kBf16;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->parameter_bytes, 1048 * 6);
  EXPECT_EQ(plan->gradient_bytes, 1048 * 4);
  EXPECT_EQ(plan->optimizer_bytes, 1048 * 9);
  EXPECT_EQ(plan->activation_bytes, 1056 * 4);  // bf16 storage: not supported yet
  EXPECT_EQ(plan->measurement_bytes, kMeasurementFp32 + (int64_t{64} << 20));
}

// 1048 values = 66 blocks of 16 over 4 ranks: rank 0 holds 17 blocks (272 values).
TEST(MemoryPlanTest, Zero1ShardsOptimizerStateByLargestShard) {
  MemoryPlanOptions o = NoWorkspace();
  o.zero_stage = 1;
  o.world_size = 4;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->optimizer_bytes, 272 * 9);
  EXPECT_EQ(plan->parameter_bytes, 1048 * 4);
}

TEST(MemoryPlanTest, ActivationsScaleWithBatch) {
  MemoryPlanOptions one = NoWorkspace(), two = NoWorkspace();
  two.micro_batch = 2;
  auto a = ComputeMemoryPlan(Tiny(), one), b = ComputeMemoryPlan(Tiny(), two);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->parameter_bytes, a->parameter_bytes);
  // Everything per row doubles; the bias-gradient scratch (32 values) does not.
  EXPECT_EQ(b->activation_bytes, 2 * a->activation_bytes);
  EXPECT_EQ(b->kernel_scratch_bytes, 2 * a->kernel_scratch_bytes - 32 * 4);
}

TEST(MemoryPlanTest, WorkspaceIsCountedOnce) {
  MemoryPlanOptions o;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->workspace_bytes, 32 << 20);
}

TEST(MemoryPlanTest, RejectsSequenceLongerThanContext) {
  MemoryPlanOptions o;
  o.seq_len = 5;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("seq_len=5"), absl::string_view::npos);
}

TEST(MemoryPlanTest, FitsWhenTotalIsAvailable) {
  auto plan = ComputeMemoryPlan(Tiny(), NoWorkspace());
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(CheckMemoryPlanFits(*plan, plan->total_bytes()).ok());
}

TEST(MemoryPlanTest, KnownPeakSkipsTheMeasurement) {
  MemoryPlanOptions o = NoWorkspace();
  o.measure_peak = false;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->measurement_bytes, 0);
}

TEST(MemoryPlanTest, TooSmallDeviceFailsNamingLargestPart) {
  MemoryPlanOptions o;  // the 32 MiB workspace dominates this tiny model
  o.measure_peak = false;
  auto plan = ComputeMemoryPlan(Tiny(), o);
  ASSERT_TRUE(plan.ok());
  const absl::Status s = CheckMemoryPlanFits(*plan, plan->total_bytes() - 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("largest part is workspace"), absl::string_view::npos) << s;
}

TEST(MemoryPlanTest, FormatListsEveryCategoryInMiB) {
  MemoryPlan plan;
  plan.parameter_bytes = 3 << 20;
  plan.activation_bytes = 1 << 19;
  const std::string s = FormatMemoryPlan(plan);
  EXPECT_NE(s.find("parameters            3.0 MiB"), std::string::npos) << s;
  EXPECT_NE(s.find("activations           0.5 MiB"), std::string::npos) << s;
  EXPECT_NE(s.find("total                 3.5 MiB"), std::string::npos) << s;
  for (const char* name : {"gradients", "optimizer", "kernel scratch", "measurement", "workspace"})
    EXPECT_NE(s.find(name), std::string::npos) << name;
}

TEST(MemoryPlanTest, ParsesPrecisionNames) {
  EXPECT_EQ(*ParsePrecision("fp32"), Precision::kFp32);
  EXPECT_EQ(*ParsePrecision("bf16"), Precision::kBf16);
  EXPECT_FALSE(ParsePrecision("fp16").ok());
}

}  // namespace
}  // namespace mla
