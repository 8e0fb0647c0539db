// The ModelConfig schema (runtime/model_config.h): its rows, text forms and
// the key=value spec, against values written out by hand here.
#include "runtime/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

using ::testing::HasSubstr;

TEST(ModelConfigSchemaTest, RowsAreTheFieldsInTheirListingOrder) {
  std::vector<std::string> names;
  for (const ModelConfigField& f : ModelConfigFields()) {
    names.emplace_back(f.name);
    EXPECT_FALSE(f.help.empty()) << f.name;
  }
  EXPECT_THAT(names, ::testing::ElementsAre("vocab_size", "context_length", "n_layer", "d_model",
                                            "n_head", "attention", "kv_rank", "rope_dim", "q_rank",
                                            "latent_norm", "mlp_ratio", "tied_embeddings",
                                            "rope_theta"));
}

TEST(ModelConfigSchemaTest, DefaultsAreThePapersShape) {
  // arXiv 2506.09342: 9 layers, d = 512, 8 heads, context 512, vocab 4096,
  // MLA+RoPE at r = d/2.
  const ModelConfig c;
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_EQ(c.context_length, 512);
  EXPECT_EQ(c.n_layer, 9);
  EXPECT_EQ(c.d_model, 512);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.attention, AttentionKind::kMlaRope);
  EXPECT_EQ(c.kv_rank, 256);
  EXPECT_TRUE(ValidateModelConfig(c).ok());
}

TEST(ModelConfigSchemaTest, ToStringListsEveryFieldAsNameEqualsValue) {
  ModelConfig c;
  c.n_layer = 3;
  c.attention = AttentionKind::kMha;
  c.latent_norm = true;
  c.rope_theta = 500000.0f;
  EXPECT_EQ(ModelConfigToString(c),
            "vocab_size=4096\ncontext_length=512\nn_layer=3\nd_model=512\nn_head=8\n"
            "attention=mha\nkv_rank=256\nrope_dim=32\nq_rank=0\nlatent_norm=true\nmlp_ratio=4\n"
            "tied_embeddings=true\nrope_theta=500000\n");
}

TEST(ModelConfigSchemaTest, SetFieldParsesEachTypeAndNamesBadText) {
  ModelConfig c;
  ASSERT_TRUE(SetModelConfigField(*FindModelConfigField("kv_rank"), "64", &c).ok());
  ASSERT_TRUE(SetModelConfigField(*FindModelConfigField("tied_embeddings"), "false", &c).ok());
  ASSERT_TRUE(SetModelConfigField(*FindModelConfigField("attention"), "mla", &c).ok());
  ASSERT_TRUE(SetModelConfigField(*FindModelConfigField("rope_theta"), "1e6", &c).ok());
  EXPECT_EQ(c.kv_rank, 64);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.attention, AttentionKind::kMla);
  EXPECT_EQ(c.rope_theta, 1e6f);
  const absl::Status s = SetModelConfigField(*FindModelConfigField("n_layer"), "2.5", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("n_layer=2.5: not an integer"));
  EXPECT_FALSE(SetModelConfigField(*FindModelConfigField("latent_norm"), "yes", &c).ok());
  EXPECT_FALSE(SetModelConfigField(*FindModelConfigField("attention"), "gqa", &c).ok());
  EXPECT_EQ(FindModelConfigField("layers"), nullptr);
}

TEST(ModelConfigSpecTest, KeysAndAliasesApplyOverTheBase) {
  ModelConfig base;
  base.d_model = 256;
  const std::pair<absl::string_view, absl::string_view> aliases[] = {{"layers", "n_layer"}};
  absl::StatusOr<ModelConfig> c =
      ParseModelConfigSpec("attention=mha,layers=2,n_head=4", base, aliases);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->attention, AttentionKind::kMha);
  EXPECT_EQ(c->n_layer, 2);
  EXPECT_EQ(c->n_head, 4);
  EXPECT_EQ(c->d_model, 256);
}

TEST(ModelConfigSpecTest, UnknownKeysAndInvalidConfigsAreErrors) {
  EXPECT_THAT(ParseModelConfigSpec("n_layers=2", ModelConfig(), {}).status().message(),
              HasSubstr("unknown model config key 'n_layers'"));
  EXPECT_THAT(ParseModelConfigSpec("d_model=30", ModelConfig(), {}).status().message(),
              HasSubstr("n_head=8: must divide d_model=30"));
}

}  // namespace
}  // namespace mla
