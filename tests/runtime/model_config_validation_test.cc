// ModelConfig validation (each invalid field gives its own message naming
// it) and the closed-form cost accounting.
#include "gtest/gtest.h"
#include "runtime/model_config.h"
#include "runtime/parameter_layout.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

ModelConfig Valid() {
  return testing::MakeConfig(AttentionKind::kMlaRope,
                             {.vocab_size = 4096, .context_length = 512, .n_layer = 9,
                              .d_model = 512, .n_head = 8, .kv_rank = 256, .rope_dim = 32});
}

struct BadCase {
  const char* name;
  void (*mutate)(ModelConfig&);
  const char* field;
};

class InvalidConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(InvalidConfigTest, MessageNamesTheField) {
  ModelConfig c = Valid();
  GetParam().mutate(c);
  const absl::Status s = ValidateModelConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()).rfind(GetParam().field, 0), 0u) << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Fields, InvalidConfigTest,
    ::testing::Values(
        BadCase{"vocab_zero", [](ModelConfig& c) { c.vocab_size = 0; }, "vocab_size=0"},
        BadCase{"vocab_over_uint16", [](ModelConfig& c) { c.vocab_size = 70000; }, "vocab_size=70000"},
        BadCase{"context_zero", [](ModelConfig& c) { c.context_length = 0; }, "context_length=0"},
        BadCase{"layers_zero", [](ModelConfig& c) { c.n_layer = 0; }, "n_layer=0"},
        BadCase{"d_model_negative", [](ModelConfig& c) { c.d_model = -4; }, "d_model=-4"},
        BadCase{"heads_zero", [](ModelConfig& c) { c.n_head = 0; }, "n_head=0"},
        BadCase{"heads_not_dividing", [](ModelConfig& c) { c.n_head = 7; }, "n_head=7"},
        BadCase{"rank_above_d", [](ModelConfig& c) { c.kv_rank = 513; }, "kv_rank=513"},
        BadCase{"rank_zero", [](ModelConfig& c) { c.kv_rank = 0; }, "kv_rank=0"},
        BadCase{"odd_rope", [](ModelConfig& c) { c.rope_dim = 15; }, "rope_dim=15"},
        BadCase{"q_rank_negative", [](ModelConfig& c) { c.q_rank = -1; }, "q_rank=-1"},
        BadCase{"q_rank_for_mha",
                [](ModelConfig& c) {
                  c.attention = AttentionKind::kMha;
                  c.q_rank = 64;
                },
                "q_rank=64"},
        BadCase{"latent_norm_for_mha",
                [](ModelConfig& c) {
                  c.attention = AttentionKind::kMha;
                  c.latent_norm = true;
                },
                "latent_norm"},
        BadCase{"odd_head_dim_mha_rope",
                [](ModelConfig& c) {
                  c.attention = AttentionKind::kMhaRope;
                  c.d_model = 24;
                  c.n_head = 8;
                },
                "n_head=8"},
        BadCase{"mlp_ratio_zero", [](ModelConfig& c) { c.mlp_ratio = 0; }, "mlp_ratio=0"}),
    [](const auto& info) { return info.param.name; });

TEST(ModelConfigTest, PaperConfigIsValid) { EXPECT_TRUE(ValidateModelConfig(Valid()).ok()); }

TEST(ModelConfigTest, UnknownAttentionKindIsRejected) {
  auto k = ParseAttentionKind("gqa");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(std::string(k.status().message()).find("attention"), std::string::npos);
}

TEST(ModelCostTest, ParameterCountEqualsLayoutTotal) {
  for (AttentionKind k : {AttentionKind::kMha, AttentionKind::kMhaRope, AttentionKind::kMla,
                          AttentionKind::kMlaRope}) {
    ModelConfig c = Valid();
    c.attention = k;
    EXPECT_EQ(ComputeModelCost(c).parameters, BuildParameterLayout(c).packed_total) << AttentionKindName(k);
  }
}

TEST(ModelCostTest, PaperMhaHasAbout30MParameters) {
  ModelConfig c = Valid();
  c.attention = AttentionKind::kMha;
  // 9·(12·512² + 13·512) + 4096·512 + 512·512 + 2·512, by hand.
  const int64_t expected = 9 * (12LL * 512 * 512 + 13 * 512) + 4096LL * 512 + 512LL * 512 + 1024;
  EXPECT_EQ(ComputeModelCost(c).parameters, expected);
}

TEST(ModelCostTest, KvCacheBytesFollowTheFormula) {
  ModelConfig c = Valid();
  c.attention = AttentionKind::kMha;
  EXPECT_EQ(ComputeModelCost(c).kv_cache_bytes_per_token(4), 9 * 2 * 512 * 4);
  c.attention = AttentionKind::kMla;
  EXPECT_EQ(ComputeModelCost(c).kv_cache_bytes_per_token(2), 9 * 256 * 2);
  c.attention = AttentionKind::kMlaRope;
  EXPECT_EQ(ComputeModelCost(c).kv_cache_values_per_token, 9 * (256 + 32));
}

TEST(ModelCostTest, TrainingFlopsAreSixPerWeightPlusAttention) {
  ModelConfig c = Valid();
  c.attention = AttentionKind::kMha;
  const double weights = 9.0 * (4 * 512 * 512 + 4 * 512 + 8 * 512 * 512) + 4096.0 * 512;
  const double attention = 6.0 * 9 * 512 * 8 * (64 + 64);
  EXPECT_DOUBLE_EQ(ComputeModelCost(c).train_flops_per_token, 6 * weights + attention);
}

}  // namespace
}  // namespace mla
