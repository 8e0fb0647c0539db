#include "layers/cpu/peak_flops.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "glog/logging.h"
#include "layers/cpu/onednn_matmul.h"

namespace mla {

double MeasureSgemmGflops(int n, int repeats) {
  CHECK_GT(n, 0);
  CHECK_GT(repeats, 0);
  const int64_t ld = n + 16;  // rows off the 2 KiB multiples that alias in cache
  OnednnMatmul matmul;
  std::vector<float> a(static_cast<size_t>(n) * ld), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {  // any non-special values will do
    a[i] = static_cast<float>(i % 17) * 0.03125f - 0.25f;
    b[i] = static_cast<float>(i % 13) * 0.0625f - 0.375f;
  }
  MatmulShape s;
  s.M = s.N = s.K = n;
  s.lda = s.ldb = s.ldc = ld;
  matmul.Run(s, a.data(), b.data(), nullptr, c.data());
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul.Run(s, a.data(), b.data(), nullptr, c.data());
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sec > 0) best = std::max(best, 2.0 * n * n * static_cast<double>(n) / sec / 1e9);
  }
  return best;
}

double MeasureSgemmPeakGflops(int repeats) {
  double best = 0;
  for (int n : kSgemmPeakSizes) best = std::max(best, MeasureSgemmGflops(n, repeats));
  return best;
}

}  // namespace mla
