// The model config as checkpoint /config entries (runtime/model_checkpoint.h):
// the names and types of format v1, written out by hand here, so a
// checkpoint written before the schema existed still loads.
#include "runtime/model_checkpoint.h"

#include <algorithm>
#include <string>
#include <vector>

#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

using ckpt::ConfigEntry;
using ::testing::HasSubstr;

ModelConfig Sample() {
  absl::StatusOr<ModelConfig> c = ParseModelConfigSpec(
      "vocab_size=512,context_length=64,n_layer=2,d_model=32,n_head=4,attention=mla,kv_rank=16,"
      "rope_dim=4,q_rank=8,latent_norm=true,mlp_ratio=2,tied_embeddings=false,rope_theta=20000",
      ModelConfig(), {});
  CHECK(c.ok()) << c.status();
  return *c;
}

// Format v1's /config entries of Sample().
std::vector<ConfigEntry> V1Entries() {
  return {{"vocab_size", int64_t{512}}, {"context_length", int64_t{64}}, {"n_layer", int64_t{2}},
          {"d_model", int64_t{32}},     {"n_head", int64_t{4}},          {"attention", std::string("mla")},
          {"kv_rank", int64_t{16}},     {"rope_dim", int64_t{4}},        {"q_rank", int64_t{8}},
          {"latent_norm", true},        {"mlp_ratio", int64_t{2}},       {"tied_embeddings", false},
          {"rope_theta", 20000.0}};
}

TEST(ModelCheckpointTest, EntriesHaveTheNamesAndTypesOfFormatV1) {
  const std::vector<ConfigEntry> entries = ModelConfigEntries(Sample());
  const std::vector<ConfigEntry> expected = V1Entries();
  ASSERT_EQ(entries.size(), expected.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].key, expected[i].key);
    EXPECT_EQ(entries[i].value.index(), expected[i].value.index()) << entries[i].key;
    EXPECT_EQ(entries[i].value, expected[i].value) << entries[i].key;
  }
}

TEST(ModelCheckpointTest, V1EntriesLoadInAnyOrderWithExtraEntries) {
  std::vector<ConfigEntry> entries = V1Entries();
  std::reverse(entries.begin(), entries.end());
  entries.push_back({"train.lr", std::string("0.001")});
  absl::StatusOr<ModelConfig> c = ModelConfigFromEntries(entries);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ModelConfigToString(*c), ModelConfigToString(Sample()));
}

TEST(ModelCheckpointTest, MissingOrMistypedEntriesNameTheField) {
  std::vector<ConfigEntry> missing = V1Entries();
  missing.erase(missing.begin() + 6);  // kv_rank
  EXPECT_THAT(ModelConfigFromEntries(missing).status().message(),
              HasSubstr("config field 'kv_rank' is missing"));
  std::vector<ConfigEntry> mistyped = V1Entries();
  mistyped[9].value = int64_t{1};  // latent_norm
  EXPECT_THAT(ModelConfigFromEntries(mistyped).status().message(),
              HasSubstr("config field 'latent_norm' is not a boolean"));
  std::vector<ConfigEntry> too_big = V1Entries();
  too_big[2].value = int64_t{1} << 40;  // n_layer
  EXPECT_THAT(ModelConfigFromEntries(too_big).status().message(),
              HasSubstr("config field 'n_layer' is not a 32-bit integer"));
  std::vector<ConfigEntry> kind = V1Entries();
  kind[5].value = int64_t{2};  // attention
  EXPECT_THAT(ModelConfigFromEntries(kind).status().message(),
              HasSubstr("config field 'attention' is not a string"));
}

}  // namespace
}  // namespace mla
