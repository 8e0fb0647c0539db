// Finite-difference checks of the whole model's gradient, for every attention
// kind and option: the analytic gradient projected on random directions (one
// per tensor, and one over all parameters) must equal the central difference
// of the loss along that direction.
//
// Tolerance: directions have unit L2 norm, so with h = 1e-2 the central
// difference's truncation error h²·|L'''|/6 is about 1e-5·|L'''|. The loss is
// a double sum of float32 row losses, each good to ~1e-6 relative, so its
// round-off is ~1e-6·|L| ≈ 3e-6 and contributes ~3e-6/(2h) ≈ 1.5e-4 at
// worst (far less in practice since errors are correlated between the two
// evaluations). We require agreement within 2e-2 relative plus 2e-4 absolute;
// a wrong sign, a missing term or a transposed weight misses by far more.
#include <cmath>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/gpt_model.h"
#include "tests/runtime/model_test_util.h"

namespace mla {
namespace {

class ModelGradientTest : public ::testing::TestWithParam<testing::NamedConfig> {};

double Loss(GptModel& model, const std::vector<int32_t>& tok, int B, int T) {
  std::vector<int32_t> in, tg;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      in.push_back(tok[b * (T + 1) + t]);
      tg.push_back(tok[b * (T + 1) + t + 1]);
    }
  return model.Forward(in.data(), tg.data(), B, T);
}

TEST_P(ModelGradientTest, GradientMatchesCentralDifferences) {
  const ModelConfig cfg = GetParam().config;
  CpuKernels kernels;
  auto model_or = GptModel::Create(cfg, &kernels);
  ASSERT_TRUE(model_or.ok()) << model_or.status();
  GptModel& model = **model_or;
  const int B = 2, T = 7;
  // Parameters of O(0.3) (norm gains around 1) so every path carries gradient.
  std::vector<float> p(model.num_params());
  testing::FillNormal(p, 11, 0.3f);
  for (const ParamSpec& s : model.layout().params)
    if (s.init == ParamSpec::Init::kOnes)
      for (int64_t i = 0; i < s.numel; ++i) p[s.offset + i] += 1.0f;
  model.LoadParamsFromHost(p.data(), 0, model.num_params());
  const std::vector<int32_t> tok = testing::RandomTokens(B * (T + 1), cfg.vocab_size, 5);
  std::vector<int32_t> in, tg;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      in.push_back(tok[b * (T + 1) + t]);
      tg.push_back(tok[b * (T + 1) + t + 1]);
    }
  model.ZeroGrads();
  model.Forward(in.data(), tg.data(), B, T, 1.0f / (B * T));
  model.Backward(in.data(), B, T);
  const std::vector<float> grad = model.GradsToHost();

  const float h = 1e-2f;
  int checked = 0;
  for (size_t ti = 0; ti < model.layout().params.size(); ++ti) {
    const ParamSpec& s = model.layout().params[ti];
    std::vector<float> dir(s.numel);
    testing::FillNormal(dir, 100 + ti, 1.0f);
    double norm = 0.0;
    for (float d : dir) norm += static_cast<double>(d) * d;
    for (float& d : dir) d = static_cast<float>(d / std::sqrt(norm));
    double analytic = 0.0;
    for (int64_t i = 0; i < s.numel; ++i) analytic += dir[i] * grad[s.offset + i];
    // p ± h·dir on this tensor, through the host accessors.
    auto set = [&](double sign) {
      std::vector<float> t(p.begin() + s.offset, p.begin() + s.offset + s.numel);
      for (int64_t i = 0; i < s.numel; ++i) t[i] = p[s.offset + i] + static_cast<float>(sign * h) * dir[i];
      model.LoadParamsFromHost(t.data(), s.offset, s.numel);
    };
    set(+1);
    const double lp = Loss(model, tok, B, T);
    set(-1);
    const double lm = Loss(model, tok, B, T);
    model.LoadParamsFromHost(p.data() + s.offset, s.offset, s.numel);
    const double numeric = (lp - lm) / (2.0 * h);
    EXPECT_NEAR(analytic, numeric, 2e-2 * std::fabs(numeric) + 2e-4)
        << GetParam().name << " tensor " << s.name;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(model.layout().params.size()));
}

TEST_P(ModelGradientTest, GradientAccumulatesAcrossCalls) {
  const ModelConfig cfg = GetParam().config;
  CpuKernels kernels;
  auto model = *GptModel::Create(cfg, &kernels);
  model->InitParameters(3);
  const int B = 2, T = 5;
  const auto in = testing::RandomTokens(B * T, cfg.vocab_size, 1);
  const auto tg = testing::RandomTokens(B * T, cfg.vocab_size, 2);
  model->ZeroGrads();
  model->Forward(in.data(), tg.data(), B, T, 1.0f);
  model->Backward(in.data(), B, T);
  const std::vector<float> once = model->GradsToHost();
  model->Forward(in.data(), tg.data(), B, T, 1.0f);
  model->Backward(in.data(), B, T);
  const std::vector<float> twice = model->GradsToHost();
  for (int64_t i = 0; i < model->num_params(); ++i)
    ASSERT_NEAR(twice[i], 2.0f * once[i], 1e-5f * (1.0f + std::fabs(once[i]))) << i;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, ModelGradientTest, ::testing::ValuesIn(testing::SmallConfigs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mla
