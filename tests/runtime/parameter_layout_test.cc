// The parameter layout (runtime/parameter_layout.h) and its packed checkpoint
// image (runtime/model_checkpoint.h): tensors aligned to 16 bytes in the
// buffer, contiguous in the checkpoint, and slices of any sharding of the
// buffer mapping to a tiling of the packed buffer that holds exactly the
// tensors' values in order.
#include "runtime/parameter_layout.h"

#include <vector>

#include "gtest/gtest.h"
#include "runtime/model_checkpoint.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

class ParameterLayoutTest : public ::testing::TestWithParam<testing::NamedConfig> {};

TEST_P(ParameterLayoutTest, TensorsStartOnSixteenBytesExceptValueUpProjection) {
  const ParameterLayout layout = BuildParameterLayout(GetParam().config);
  for (size_t i = 0; i < layout.params.size(); ++i) {
    const ParamSpec& p = layout.params[i];
    if (p.name.find("attn.w_uv") != std::string::npos) {
      // One [2C, R] matrix with w_uk: directly after it.
      EXPECT_EQ(p.offset, layout.params[i - 1].offset + layout.params[i - 1].numel) << p.name;
      continue;
    }
    EXPECT_EQ(p.offset * sizeof(float) % 16, 0u) << p.name << " at " << p.offset;
    if (i > 0) {
      const int64_t end = layout.params[i - 1].offset + layout.params[i - 1].numel;
      EXPECT_GE(p.offset, end) << p.name;
      EXPECT_LT(p.offset - end, kParamAlignment) << p.name << ": more padding than alignment needs";
    }
  }
  EXPECT_EQ(layout.total, layout.params.back().offset + layout.params.back().numel);
}

TEST_P(ParameterLayoutTest, PackedOffsetsAreContiguousAndCountTheModel) {
  const ModelConfig& c = GetParam().config;
  const ParameterLayout layout = BuildParameterLayout(c);
  int64_t next = 0;
  for (const ParamSpec& p : layout.params) {
    EXPECT_EQ(p.packed_offset, next) << p.name;
    next += p.numel;
  }
  EXPECT_EQ(layout.packed_total, next);
  EXPECT_EQ(layout.packed_total, ComputeModelCost(c).parameters);
  const std::vector<ckpt::TensorSpec> specs = TensorSpecs(layout);
  ASSERT_EQ(specs.size(), layout.params.size());
  for (size_t i = 0; i < specs.size(); ++i) EXPECT_EQ(specs[i].offset, layout.params[i].packed_offset);
}

TEST_P(ParameterLayoutTest, DecaySegmentsTileTheBufferWithGapsUndecayed) {
  const ParameterLayout layout = BuildParameterLayout(GetParam().config);
  int64_t next = 0;
  size_t tensor = 0;
  for (const DecaySegment& s : DecaySegments(layout)) {
    EXPECT_EQ(s.offset, next);
    next += s.numel;
    if (tensor < layout.params.size() && s.offset == layout.params[tensor].offset) {
      EXPECT_EQ(s.numel, layout.params[tensor].numel);
      EXPECT_EQ(s.decay, layout.params[tensor].decay);
      ++tensor;
    } else {
      EXPECT_FALSE(s.decay) << "gap at " << s.offset;
    }
  }
  EXPECT_EQ(tensor, layout.params.size());
  EXPECT_EQ(next, layout.total);
}

TEST_P(ParameterLayoutTest, ShardsOfTheBufferPackIntoATilingOfTheTensors) {
  const ParameterLayout layout = BuildParameterLayout(GetParam().config);
  // Buffer element i holds i + 1 inside tensors, -1 in the gaps; the packed
  // image must be the tensors' values in order, whatever the sharding.
  std::vector<float> buffer(static_cast<size_t>(layout.total), -1.0f), want;
  for (const ParamSpec& p : layout.params)
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      buffer[i] = static_cast<float>(i + 1);
      want.push_back(static_cast<float>(i + 1));
    }
  for (int world : {1, 2, 3, 7}) {
    std::vector<float> got;
    for (int rank = 0; rank < world; ++rank) {
      const ckpt::FlatRange r = ckpt::EvenShard(layout.total, rank, world);
      std::vector<float> staging;
      const ckpt::FlatSlice s = PackedSlice(
          layout, r.lo, absl::MakeConstSpan(buffer.data() + r.lo, r.hi - r.lo), &staging);
      EXPECT_EQ(s.lo, static_cast<int64_t>(got.size())) << "rank " << rank << " of " << world;
      got.insert(got.end(), s.values.begin(), s.values.end());
    }
    EXPECT_EQ(got, want) << world << " ranks";
  }
}

TEST(ParameterLayout, SmallConfigsIncludeOneWithPadding) {
  // The tests above and the model tests run a padded layout at least once.
  bool padded = false;
  for (const auto& n : testing::SmallConfigs()) {
    const ParameterLayout layout = BuildParameterLayout(n.config);
    padded |= layout.total > layout.packed_total;
  }
  EXPECT_TRUE(padded);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, ParameterLayoutTest, ::testing::ValuesIn(testing::SmallConfigs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla
