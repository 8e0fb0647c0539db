// The decoder on a non-host device, checked without a GPU: a Decoder over
// FakeDeviceKernels (tests/device/fake_device_kernels.h) must give the host
// decoder's logits bit for bit (the same kernel calls on the same values),
// and a decode step must move only the row table up and the logits down,
// gather one row per segment on the device and allocate nothing.
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/decoder.h"
#include "runtime/gpt_model.h"
#include "tests/device/fake_device_kernels.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

using testing::FakeDeviceKernels;

struct Case {
  testing::NamedConfig named;
  DecodeMode mode;
};

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (const auto& n : testing::SmallConfigs()) {
    out.push_back({n, DecodeMode::kAbsorbed});
    if (n.config.is_mla()) out.push_back({n, DecodeMode::kNaive});
  }
  return out;
}

std::unique_ptr<GptModel> MakeModel(const ModelConfig& cfg, Kernels* kernels) {
  auto model = GptModel::Create(cfg, kernels);
  CHECK(model.ok()) << model.status();
  (*model)->InitParameters(11);
  return std::move(*model);
}

std::unique_ptr<Decoder> MakeDecoder(GptModel& model, DecodeMode mode) {
  DecoderOptions o;
  o.max_batch = 3;
  o.max_rows = 16;
  o.mode = mode;
  auto dec = Decoder::Create(model, model.kernels(), o);
  CHECK(dec.ok()) << dec.status();
  return std::move(*dec);
}

class DevicePathDecoderTest : public ::testing::TestWithParam<Case> {};

TEST_P(DevicePathDecoderTest, LogitsEqualHostAndADecodeStepMovesOnlyTableAndLogits) {
  const ModelConfig cfg = GetParam().named.config;
  const int V = cfg.vocab_size;
  CpuKernels host_kernels, inner;
  FakeDeviceKernels device(&inner);
  auto host_model = MakeModel(cfg, &host_kernels);
  auto dev_model = MakeModel(cfg, &device);
  auto host = MakeDecoder(*host_model, GetParam().mode);
  auto dev = MakeDecoder(*dev_model, GetParam().mode);

  const std::vector<int32_t> a = testing::RandomTokens(3, V, 3), b = testing::RandomTokens(2, V, 4);
  const std::vector<DecodeSegment> prefill = {{2, 3, a.data()}, {0, 2, b.data()}};
  host->Forward(prefill, true);
  dev->Forward(prefill, true);
  const size_t prefill_values = static_cast<size_t>(5) * V;
  EXPECT_EQ(std::vector<float>(host->logits(), host->logits() + prefill_values),
            std::vector<float>(dev->logits(), dev->logits() + prefill_values));

  int32_t next[2] = {1, 2};
  for (int step = 0; step < 4; ++step) {
    const std::vector<DecodeSegment> segs = {{2, 1, &next[0]}, {0, 1, &next[1]}};
    host->Forward(segs, false);
    device.ResetCounts();
    dev->Forward(segs, false);
    const FakeDeviceKernels::Counts& c = device.counts();
    EXPECT_EQ(c.to_device, 1) << "the row table, once";
    EXPECT_EQ(c.to_host, 1) << "the logits, once";
    EXPECT_EQ(c.on_device, 2) << "one last-row gather per segment";
    EXPECT_EQ(c.allocations, 0);
    const std::vector<float> lh(host->logits(), host->logits() + 2 * V);
    EXPECT_EQ(lh, std::vector<float>(dev->logits(), dev->logits() + 2 * V)) << "step " << step;
    next[0] = static_cast<int32_t>((next[0] + 5) % V);
    next[1] = static_cast<int32_t>((next[1] + 3) % V);
  }
  EXPECT_EQ(dev->cache().length(2), 7);
  EXPECT_EQ(dev->cache().length(0), 6);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, DevicePathDecoderTest, ::testing::ValuesIn(AllCases()),
                         [](const auto& info) {
                           return info.param.named.name +
                                  (info.param.mode == DecodeMode::kAbsorbed ? "_absorbed" : "_naive");
                         });

}  // namespace
}  // namespace mla
