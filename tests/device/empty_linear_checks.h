#pragma once
// The kernel interface's contract for Linear products with an empty
// dimension (layers/kernels.h), checked on any Kernels through its own
// memory and copies, so the same checks run on the fake device (CPU
// arithmetic, every machine: device_path_model_test) and on the GPU
// (cuda_kernels_test). An empty product contributes nothing:
//   M == 0  LinearBackward leaves dw and db as they were;
//   N == 0  dx = 0 (or unchanged when accumulating); dpre = 0;
//   K == 0  LinearForward: y = bias (GELU(bias)); LinearBackward: db += Σ dy.
// A GPU path that skips an empty GEMM but still adds its bias-gradient
// scratch into db fails the first case.
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "layers/device_array.h"
#include "layers/kernels.h"
#include "layers/math/activation_math.h"

namespace mla::testing {

inline std::vector<float> Ramp(int64_t n, float start) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + 0.25f * static_cast<float>(i);
  return v;
}

// Uploads `host` into a new device array of k (at least one element).
inline DeviceArray<float> Upload(Kernels& k, const std::vector<float>& host) {
  DeviceArray<float> a(&k, std::max<int64_t>(static_cast<int64_t>(host.size()), 1));
  if (!host.empty()) a.CopyFromHost(host.data(), static_cast<int64_t>(host.size()));
  return a;
}

inline std::vector<float> Download(Kernels& k, const DeviceArray<float>& a, int64_t n) {
  std::vector<float> host(static_cast<size_t>(n));
  if (n > 0) k.CopyToHost(host.data(), a.data(), static_cast<size_t>(n) * sizeof(float));
  return host;
}

inline void ExpectEmptyLinearProductsAddNothing(Kernels& k) {
  const int64_t N = 6, K = 5;
  const std::vector<float> dw0 = Ramp(N * K, -2.0f), db0 = Ramp(N, 1.0f);
  {  // M == 0, with and without the weight gradient (BGRADB path and column sums).
    DeviceArray<float> x = Upload(k, {}), w = Upload(k, Ramp(N * K, 0.5f)), dy = Upload(k, {});
    DeviceArray<float> dx = Upload(k, {}), dw = Upload(k, dw0), db = Upload(k, db0);
    k.LinearBackward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), 0, N, K,
                     false);
    k.LinearBackward(nullptr, w.data(), dy.data(), nullptr, nullptr, db.data(), 0, N, K, false);
    EXPECT_EQ(Download(k, dw, N * K), dw0) << "M == 0 changed dw";
    EXPECT_EQ(Download(k, db, N), db0) << "M == 0 changed db";
  }
  const int64_t M = 3;
  {  // N == 0: dx = 0 when not accumulating, unchanged when accumulating.
    DeviceArray<float> x = Upload(k, Ramp(M * K, 0.0f)), w = Upload(k, {}), dy = Upload(k, {});
    DeviceArray<float> dx = Upload(k, Ramp(M * K, 3.0f));
    k.LinearBackward(x.data(), w.data(), dy.data(), dx.data(), nullptr, nullptr, M, 0, K, true);
    EXPECT_EQ(Download(k, dx, M * K), Ramp(M * K, 3.0f)) << "N == 0 changed an accumulated dx";
    k.LinearBackward(x.data(), w.data(), dy.data(), dx.data(), nullptr, nullptr, M, 0, K, false);
    EXPECT_EQ(Download(k, dx, M * K), std::vector<float>(M * K, 0.0f)) << "N == 0: dx != 0";
  }
  {  // K == 0: db += Σ_rows dy; y = bias, and GELU(bias).
    const std::vector<float> dy_host = Ramp(M * N, -1.0f), bias = Ramp(N, -0.75f);
    DeviceArray<float> dy = Upload(k, dy_host), db = Upload(k, db0), w = Upload(k, {});
    DeviceArray<float> x = Upload(k, {}), y = Upload(k, Ramp(M * N, 9.0f)), b = Upload(k, bias);
    k.LinearBackward(nullptr, w.data(), dy.data(), nullptr, nullptr, db.data(), M, N, 0, false);
    std::vector<float> expected = db0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) expected[j] += dy_host[i * N + j];  // exact: quarters
    EXPECT_EQ(Download(k, db, N), expected) << "K == 0: db != db0 + column sums of dy";
    k.LinearForward(x.data(), w.data(), b.data(), y.data(), M, N, 0, Epilogue::kBias, false);
    std::vector<float> rows(M * N);
    for (int64_t i = 0; i < M * N; ++i) rows[i] = bias[i % N];
    EXPECT_EQ(Download(k, y, M * N), rows) << "K == 0: y != bias";
    k.LinearForward(x.data(), w.data(), b.data(), y.data(), M, N, 0, Epilogue::kBiasGelu, false);
    const std::vector<float> h = Download(k, y, M * N);
    for (int64_t i = 0; i < M * N; ++i)
      EXPECT_NEAR(h[i], math::GeluTanh(rows[i]), 8 * 6e-8 * (1 + std::fabs(rows[i])))
          << "K == 0: y != GELU(bias) at " << i;
  }
}

}  // namespace mla::testing
