// AdamW against torch.optim.AdamW (tests/optim/adamw_reference.py) on a small
// random problem: decayed and non-decayed segments, 5 steps, varying lr.
//
// Tolerances, from float32 rounding (ε = 2⁻²³) over T = 5 steps. Gradients are
// g = ±u·σ with u uniform in [0.5, 1.5] (random sign each step), so for any
// element max|g| / min|g| ≤ 3, hence sqrt(v̂) ≥ min|g| and the Adam direction
// u = m̂ / (sqrt(v̂) + eps) has |u| ≤ 3. Each step rounds ≤ 4 times in m and v
// (relative to max|g| and max g², and errors decay by β < 1), so
//   |δm| ≤ 4Tε·max|g|,  |δv| ≤ 4Tε·max g²;
// the direction then errs by ≤ |δm̂|/min|g| + |u|·|δv̂|/(2v̂) + 4ε|u| ≤ 8·3·Tε
// (bias corrections ≤ 1/(1−β1) are included by bounding m̂ like m), and p by
// 2ε|p| per step from the decay and update roundings, so
//   |δp| ≤ 2Tε·max|p| + 24Tε·Σₜ lrₜ.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "optim/adamw.h"

namespace mla {
namespace {

constexpr float kEps32 = std::numeric_limits<float>::epsilon();

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

template <typename T>
void Put(std::ofstream& out, const T* data, size_t count) {
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
}

TEST(AdamWTorchParity, FiveStepsMatchTorchWithinFloat32Rounding) {
  constexpr int kSteps = 5;
  const int64_t n = 4096 + 123;
  // Matrix, bias, matrix, norm weight, matrix: sizes not multiples of 8 or 16.
  const std::vector<DecaySegment> segments = {
      {0, 1500, true}, {1500, 77, false}, {1577, 2000, true}, {3577, 301, false}, {3878, 341, true}};
  const float lrs[kSteps] = {1e-3f, 3e-3f, 2e-3f, 5e-4f, 1e-4f};
  const AdamWConfig config{0.9f, 0.95f, 1e-8f, 0.1f};

  std::mt19937 rng(20250611);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> magnitude(0.5f, 1.5f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> params(n), sigma(n);
  for (int64_t i = 0; i < n; ++i) {
    params[i] = 0.5f * normal(rng);
    sigma[i] = i % 3 == 0 ? 1e-3f : (i % 3 == 1 ? 1e-1f : 2.0f);  // several gradient scales
  }
  std::vector<float> grads(kSteps * n);
  for (int t = 0; t < kSteps; ++t)
    for (int64_t i = 0; i < n; ++i)
      grads[t * n + i] = (sign(rng) ? 1.0f : -1.0f) * magnitude(rng) * sigma[i];

  const std::string dir = Env("TMPDIR", "/tmp");
  const std::string tag = absl::StrCat(dir, "/mla_adamw_parity_", ::getpid());
  const std::string problem = tag + ".problem", result = tag + ".result";
  {
    std::ofstream out(problem, std::ios::binary);
    const int64_t header[3] = {n, kSteps, static_cast<int64_t>(segments.size())};
    Put(out, header, 3);
    for (const DecaySegment& s : segments) {
      const int64_t row[3] = {s.offset, s.numel, s.decay ? 1 : 0};
      Put(out, row, 3);
    }
    // The float32 hyper-parameters exactly, so both sides start from the same values.
    const double hyper[4] = {config.beta1, config.beta2, config.eps, config.weight_decay};
    Put(out, hyper, 4);
    Put(out, lrs, kSteps);
    Put(out, params.data(), n);
    Put(out, grads.data(), grads.size());
    ASSERT_TRUE(out.good());
  }
  const std::string command =
      absl::StrCat(Env("MLA_PYTHON", "/usr/bin/python3"), " ", Env("MLA_SOURCE_DIR", "."),
                   "/tests/optim/adamw_reference.py ", problem, " ", result);
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  std::vector<float> ref(3 * n);
  {
    std::ifstream in(result, std::ios::binary);
    in.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
    ASSERT_TRUE(in.good()) << "short result file " << result;
  }
  std::remove(problem.c_str());
  std::remove(result.c_str());

  absl::StatusOr<AdamW> adamw = AdamW::Create(config, {0, n}, segments);
  ASSERT_TRUE(adamw.ok()) << adamw.status();
  std::vector<float> p = params;
  float max_abs_p = 0.0f;
  for (int t = 0; t < kSteps; ++t) {
    for (float x : p) max_abs_p = std::max(max_abs_p, std::fabs(x));
    adamw->Step(p.data(), grads.data() + t * n, lrs[t]);
  }
  double lr_sum = 0.0;
  for (float lr : lrs) lr_sum += lr;

  int exact = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g_max = 1.5 * sigma[i];
    const double tol_m = 4 * kSteps * kEps32 * g_max;
    const double tol_v = 4 * kSteps * kEps32 * g_max * g_max;
    const double tol_p = 2 * kSteps * kEps32 * std::max(max_abs_p, std::fabs(p[i])) +
                         24 * kSteps * kEps32 * lr_sum;
    ASSERT_NEAR(p[i], ref[i], tol_p) << "param " << i;
    ASSERT_NEAR(adamw->m()[i], ref[n + i], tol_m) << "exp_avg " << i;
    ASSERT_NEAR(adamw->v()[i], ref[2 * n + i], tol_v) << "exp_avg_sq " << i;
    exact += p[i] == ref[i];
  }
  std::printf("parameters bitwise equal to torch: %d of %lld\n", exact, static_cast<long long>(n));
}

}  // namespace
}  // namespace mla
