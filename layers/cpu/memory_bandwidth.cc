#include "layers/cpu/memory_bandwidth.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "glog/logging.h"

namespace mla {

int64_t ParseCacheSize(const std::string& text) {
  size_t end = 0;
  int64_t v = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') {
    v = v * 10 + (text[end] - '0');
    if (v > (int64_t{1} << 50)) return 0;
    ++end;
  }
  if (end == 0) return 0;
  std::string unit = text.substr(end);
  while (!unit.empty() && (unit.back() == '\n' || unit.back() == ' ')) unit.pop_back();
  if (unit.empty()) return v;
  if (unit == "K") return v << 10;
  if (unit == "M") return v << 20;
  if (unit == "G") return v << 30;
  return 0;
}

int64_t LastLevelCacheBytes() {
  // sysfs first: what this (possibly virtual) CPU reports for its own cache
  // levels. glibc's sysconf can answer from cpuid leaves that describe the
  // whole host package (seen: 384 MiB under KVM where sysfs says 32 MiB).
  int best_level = 0;
  int64_t best = 0;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_file(dir + "/level"), size_file(dir + "/size");
    if (!level_file || !size_file) continue;
    int level = 0;
    std::string size;
    if (!(level_file >> level) || !std::getline(size_file, size)) continue;
    const int64_t bytes = ParseCacheSize(size);
    if (bytes > 0 && level > best_level) {
      best_level = level;
      best = bytes;
    }
  }
  if (best > 0) return best;
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return l3;
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return l2 > 0 ? l2 : 0;
}

ReadBandwidth MeasureReadBandwidth(int repeats) {
  CHECK_GT(repeats, 0);
  ReadBandwidth r;
  r.llc_bytes = LastLevelCacheBytes();
  r.buffer_bytes = std::max<int64_t>(int64_t{512} << 20, 4 * r.llc_bytes);
  r.threads = omp_get_max_threads();
  const int64_t n = r.buffer_bytes / static_cast<int64_t>(sizeof(float));
  std::unique_ptr<float[]> buf(new float[n]);  // uninitialised: first touch below
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    for (int64_t i = n * t / threads; i < n * (t + 1) / threads; ++i)
      buf[i] = static_cast<float>(i & 7);
  }
  // 64 independent lanes per thread: one accumulator's add latency would
  // cap a single thread well below the memory's rate.
  constexpr int64_t kLanes = 64;
  const int64_t blocks = n / kLanes;
  volatile float sink = 0;  // keeps the sums alive
  for (int pass = 0; pass <= repeats; ++pass) {  // pass 0 is untimed
    const auto t0 = std::chrono::steady_clock::now();
    float sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
      const int t = omp_get_thread_num(), threads = omp_get_num_threads();
      const int64_t begin = blocks * t / threads * kLanes, end = blocks * (t + 1) / threads * kLanes;
      float acc[kLanes] = {};
      for (int64_t i = begin; i < end; i += kLanes)
#pragma omp simd
        for (int64_t j = 0; j < kLanes; ++j) acc[j] += buf[i + j];
      for (float a : acc) sum += a;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + sum;
    if (pass > 0 && s > 0) r.gb_per_s = std::max(r.gb_per_s, blocks * kLanes * 4.0 / s / 1e9);
  }
  return r;
}

}  // namespace mla
