// The decode roofline's bytes and FLOPs per token (runtime/decode_cost.h)
// against the parameter layout (an independent count of the weights) and
// closed forms worked out from docs/model.md.
#include "runtime/decode_cost.h"

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "runtime/parameter_layout.h"

namespace mla {
namespace {

ModelConfig Small(AttentionKind kind) {
  absl::StatusOr<ModelConfig> c = ParseModelConfigSpec(
      "n_layer=3,d_model=64,n_head=4,context_length=32,kv_rank=16,rope_dim=8,vocab_size=100",
      ModelConfig{}, {});
  CHECK(c.ok()) << c.status();
  c->attention = kind;
  return *c;
}

// Floats a step reads once for the whole batch: every tensor of the layout
// but the embedding tables, plus the LM head [V, C] (wte itself when tied).
double StepWeightsFromLayout(const ModelConfig& c) {
  const ParameterLayout layout = BuildParameterLayout(c);
  double n = 0;
  for (const ParamSpec& p : layout.params)
    if (p.offset != layout.weights.wte && p.offset != layout.weights.wpe &&
        p.offset != layout.weights.lm_head)
      n += p.numel;
  return n + static_cast<double>(c.vocab_size) * c.d_model;
}

TEST(DecodeCostTest, WeightsAreReadOncePerStepAndOneEmbeddingRowPerToken) {
  for (AttentionKind kind : {AttentionKind::kMha, AttentionKind::kMhaRope, AttentionKind::kMla,
                             AttentionKind::kMlaRope}) {
    for (bool tied : {true, false}) {
      ModelConfig c = Small(kind);
      c.tied_embeddings = tied;
      const double rows = c.d_model * (c.learned_positions() ? 2 : 1);
      for (int batch : {1, 32}) {
        const DecodeCost d = ComputeDecodeCost(c, DecodeMode::kAbsorbed, batch, 10, 4, 4);
        EXPECT_DOUBLE_EQ(d.weight_bytes_per_token, (StepWeightsFromLayout(c) / batch + rows) * 4)
            << AttentionKindName(kind) << " tied " << tied << " batch " << batch;
      }
    }
  }
}

// KV bytes per token: context × L × (2C | R + P | R) × bytes, whatever the batch.
TEST(DecodeCostTest, KvCacheReadIsOneSequencesCacheAtTheContext) {
  const double L = 3, C = 64, R = 16, P = 8, ctx = 20.5;
  const struct { AttentionKind kind; double values; } cases[] = {
      {AttentionKind::kMha, 2 * C}, {AttentionKind::kMhaRope, 2 * C},
      {AttentionKind::kMla, R}, {AttentionKind::kMlaRope, R + P}};
  for (const auto& k : cases)
    for (int batch : {1, 7})
      for (int bytes : {4, 2}) {
        const DecodeCost d = ComputeDecodeCost(Small(k.kind), DecodeMode::kNaive, batch, ctx, 4, bytes);
        EXPECT_DOUBLE_EQ(d.kv_bytes_per_token, ctx * L * k.values * bytes);
        EXPECT_DOUBLE_EQ(d.bytes_per_token, d.weight_bytes_per_token + d.kv_bytes_per_token);
      }
}

// FLOPs: 2 per step weight plus attention per layer over the context —
// MHA q·k and p·v over C; absorbed MLA the same over H latent rows of R;
// naive MLA expands [K|V] (2C × R per position) instead of the one-row
// W_uk/W_uv products; the rotary scores add H·P per position.
TEST(DecodeCostTest, FlopsFollowTheAttentionPath) {
  const double L = 3, C = 64, H = 4, R = 16, P = 8, ctx = 12;
  auto flops = [&](AttentionKind kind, DecodeMode mode) {
    return ComputeDecodeCost(Small(kind), mode, 1, ctx, 4, 4).flops_per_token;
  };
  auto weights = [&](AttentionKind kind) { return 2 * StepWeightsFromLayout(Small(kind)); };
  EXPECT_DOUBLE_EQ(flops(AttentionKind::kMha, DecodeMode::kAbsorbed),
                   weights(AttentionKind::kMha) + L * 4 * ctx * C);
  EXPECT_DOUBLE_EQ(flops(AttentionKind::kMla, DecodeMode::kAbsorbed),
                   weights(AttentionKind::kMla) + L * 4 * ctx * H * R);
  EXPECT_DOUBLE_EQ(flops(AttentionKind::kMlaRope, DecodeMode::kAbsorbed),
                   weights(AttentionKind::kMlaRope) + L * (4 * ctx * H * R + 2 * ctx * H * P));
  EXPECT_DOUBLE_EQ(flops(AttentionKind::kMlaRope, DecodeMode::kNaive),
                   weights(AttentionKind::kMlaRope) +
                       L * ((ctx - 1) * 2 * 2 * C * R + 4 * ctx * C + 2 * ctx * H * P));
}

TEST(DecodeCostTest, RooflineIsTheLowerOfTheMemoryAndComputeBounds) {
  DecodeCost d;
  d.bytes_per_token = 1e6;
  d.flops_per_token = 1e8;
  // 10 GB/s → 10,000 tok/s; 100 GFLOP/s → 1,000 tok/s: compute-bound.
  DecodeRoofline r = ComputeDecodeRoofline(d, 10, 100);
  EXPECT_DOUBLE_EQ(r.tokens_per_s, 1000);
  EXPECT_TRUE(r.compute_bound);
  r = ComputeDecodeRoofline(d, 10, 1e4);
  EXPECT_DOUBLE_EQ(r.tokens_per_s, 10000);
  EXPECT_FALSE(r.compute_bound);
}

}  // namespace
}  // namespace mla
