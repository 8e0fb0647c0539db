// KV-cache sizes against the closed forms of the cache contents per token and
// layer: 2·C for MHA kinds, R for mla, R + P for mla_rope.
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/kv_cache.h"
#include "runtime/model_config.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

ModelConfig Config(AttentionKind kind) {
  return testing::MakeConfig(kind, {.vocab_size = 30, .context_length = 16, .n_layer = 3,
                                    .d_model = 48, .n_head = 4, .kv_rank = 20, .rope_dim = 6});
}

TEST(KvCacheTest, ValuesPerTokenMatchTheClosedFormForEveryKind) {
  const struct {
    AttentionKind kind;
    int64_t per_layer;
  } cases[] = {{AttentionKind::kMha, 2 * 48},
               {AttentionKind::kMhaRope, 2 * 48},
               {AttentionKind::kMla, 20},
               {AttentionKind::kMlaRope, 20 + 6}};
  for (const auto& c : cases) {
    const ModelConfig cfg = Config(c.kind);
    CpuKernels kernels;
    KvCache cache(cfg, 5, 16, &kernels);
    EXPECT_EQ(cache.layout().values_per_token_per_layer(), c.per_layer);
    EXPECT_EQ(cache.values_per_token(), 3 * c.per_layer);
    EXPECT_EQ(ComputeModelCost(cfg).kv_cache_values_per_token, 3 * c.per_layer);
    EXPECT_EQ(cache.bytes_allocated(), int64_t{5} * 16 * 3 * c.per_layer * 4);
  }
}

TEST(KvCacheTest, SlotRowsAreContiguousAndDisjoint) {
  CpuKernels kernels;
  KvCache cache(Config(AttentionKind::kMlaRope), 2, 16, &kernels);
  EXPECT_EQ(cache.Row(1, 0, KvPart::kLatent, 1) - cache.Row(1, 0, KvPart::kLatent, 0), 20);
  EXPECT_EQ(cache.Row(1, 1, KvPart::kLatent, 0) - cache.Row(1, 0, KvPart::kLatent, 0), 16 * 20);
  EXPECT_EQ(cache.Row(0, 1, KvPart::kRopeKey, 3) - cache.Row(0, 1, KvPart::kRopeKey, 2), 6);
}

TEST(KvCacheTest, LengthBeyondTheSlotIsAnInvariantFailure) {
  CpuKernels kernels;
  KvCache cache(Config(AttentionKind::kMha), 1, 16, &kernels);
  cache.set_length(0, 16);
  EXPECT_EQ(cache.length(0), 16);
  EXPECT_DEATH(cache.set_length(0, 17), "length");
}

}  // namespace
}  // namespace mla
