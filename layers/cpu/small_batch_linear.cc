#include "layers/cpu/small_batch_linear.h"

#include <omp.h>

#include <algorithm>

#include "glog/logging.h"
#include "layers/math/activation_math.h"
#include "layers/math/bf16_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MLA_X86 1
#endif

namespace mla {
namespace {

// Where a finished inner product goes: y[m, n] (= or +=) dot (+ bias[n]) (→ GELU).
struct Output {
  float* y;
  const float* bias;
  int64_t N;
  Epilogue epilogue;
  bool accumulate;
};

inline void Finish(const Output& o, int64_t m, int64_t n, float dot) {
  float& dst = o.y[m * o.N + n];
  float v = dot;
  if (o.epilogue != Epilogue::kNone) v += o.bias[n];
  if (o.accumulate) v += dst;
  dst = o.epilogue == Epilogue::kBiasGelu ? math::GeluTanh(v) : v;
}

// Weight rows [n0, n1) against all M rows of x; W is float or uint16_t
// (bf16 bits, widened to float as they are loaded).
template <typename W>
using RowsFn = void (*)(const float* x, const W* w, int64_t K, int64_t n0, int64_t n1,
                        const Output& o);

inline float WeightToFloat(float w) { return w; }
inline float WeightToFloat(uint16_t w) { return math::Bf16BitsToFloat(w); }

template <int M, typename W>
void RowsScalar(const float* x, const W* w, int64_t K, int64_t n0, int64_t n1,
                const Output& o) {
  for (int64_t n = n0; n < n1; ++n) {
    const W* wr = w + n * K;
    float acc[M] = {};
    for (int64_t k = 0; k < K; ++k)
      for (int m = 0; m < M; ++m) acc[m] += WeightToFloat(wr[k]) * x[m * K + k];
    for (int m = 0; m < M; ++m) Finish(o, m, n, acc[m]);
  }
}

#if MLA_X86
// Σ of the 16 lanes, folded in halves (zero-masked shuffles: GCC 12 warns
// about the undefined pass-through operand of _mm512_reduce_add_ps).
__attribute__((target("avx512f"))) inline float HorizontalSum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xFFFF, v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xFFFF, v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m128 s = _mm512_maskz_extractf32x4_ps(0xF, v, 0);
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

// 16 weights as floats (a bf16 weight is its bits shifted into the high half).
__attribute__((target("avx512f"))) inline __m512 LoadW512(const float* p) {
  return _mm512_loadu_ps(p);
}
__attribute__((target("avx512f"))) inline __m512 LoadW512(const uint16_t* p) {
  // Zero-masked forms: GCC 12 warns about the unmasked ones' pass-through.
  const __m512i wide =
      _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
}
__attribute__((target("avx512f"))) inline __m512 MaskedLoadW512(__mmask16 mask, const float* p) {
  return _mm512_maskz_loadu_ps(mask, p);
}
// (A masked 16-bit load needs AVX512BW; the tail is copied instead.)
__attribute__((target("avx512f"))) inline __m512 MaskedLoadW512(__mmask16 mask,
                                                               const uint16_t* p) {
  alignas(32) uint16_t tail[16] = {};
  for (int i = 0; i < 16 && ((mask >> i) & 1); ++i) tail[i] = p[i];
  return LoadW512(tail);
}

// How far ahead of the rows being multiplied the AVX-512 kernels prefetch
// the weight, in bytes (whole rows, at least one block): a decoding step's
// weight rows are a few hundred bytes to a few KiB, too short for the
// hardware prefetcher to reach full speed on one core. The distances were
// chosen on the 15M-shape and paper-shape batch-1 decodes (docs/benchmarks.md,
// "Small-batch decode kernels"): bf16 weights ~1.8× faster with theirs, fp32
// within noise of none.
template <typename W>
constexpr int64_t kPrefetchBytes = sizeof(W) == 2 ? 16384 : 8192;

// RB weight rows × M x rows of 16-float FMAs; the K tail is a masked load.
template <int M, int RB, typename W>
__attribute__((target("avx512f"))) inline void BlockAvx512(const float* x, const W* w,
                                                           int64_t K, int64_t n,
                                                           int64_t prefetch_rows,
                                                           const Output& o) {
  __m512 acc[RB][M];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[r][m] = _mm512_setzero_ps();
  int64_t k = 0;
  // The weight rows prefetch_rows ahead, one cache line per row and line
  // of this block (a prefetch never faults, past the matrix's end included).
  const W* ahead = w + (n + prefetch_rows) * K;
  for (; k + 16 <= K; k += 16) {
    __m512 xv[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) xv[m] = _mm512_loadu_ps(x + m * K + k);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      if ((k * sizeof(W)) % 64 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * K + k), _MM_HINT_T0);
      const __m512 wv = LoadW512(w + (n + r) * K + k);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[r][m] = _mm512_fmadd_ps(wv, xv[m], acc[r][m]);
    }
  }
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 xv[M];
    for (int m = 0; m < M; ++m) xv[m] = _mm512_maskz_loadu_ps(mask, x + m * K + k);
    for (int r = 0; r < RB; ++r) {
      const __m512 wv = MaskedLoadW512(mask, w + (n + r) * K + k);
      for (int m = 0; m < M; ++m) acc[r][m] = _mm512_fmadd_ps(wv, xv[m], acc[r][m]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int m = 0; m < M; ++m) Finish(o, m, n + r, HorizontalSum(acc[r][m]));
}

template <int M, typename W>
__attribute__((target("avx512f"))) void RowsAvx512(const float* x, const W* w, int64_t K,
                                                   int64_t n0, int64_t n1, const Output& o) {
  constexpr int RB = M <= 2 ? 4 : 2;
  const int64_t ahead = std::max<int64_t>(RB, kPrefetchBytes<W> / (K * int64_t{sizeof(W)}));
  int64_t n = n0;
  for (; n + RB <= n1; n += RB) BlockAvx512<M, RB>(x, w, K, n, ahead, o);
  for (; n < n1; ++n) BlockAvx512<M, 1>(x, w, K, n, ahead, o);
}

__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

__attribute__((target("avx2,fma"))) inline __m256 LoadW256(const float* p) {
  return _mm256_loadu_ps(p);
}
__attribute__((target("avx2,fma"))) inline __m256 LoadW256(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// RB weight rows × M x rows of 8-float FMAs; the K tail is scalar.
template <int M, int RB, typename W>
__attribute__((target("avx2,fma"))) inline void BlockAvx2(const float* x, const W* w,
                                                          int64_t K, int64_t n,
                                                          const Output& o) {
  __m256 acc[RB][M];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[r][m] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 xv[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) xv[m] = _mm256_loadu_ps(x + m * K + k);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const __m256 wv = LoadW256(w + (n + r) * K + k);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[r][m] = _mm256_fmadd_ps(wv, xv[m], acc[r][m]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    for (int m = 0; m < M; ++m) {
      float tail = 0.0f;
      for (int64_t j = k; j < K; ++j) tail += WeightToFloat(w[(n + r) * K + j]) * x[m * K + j];
      Finish(o, m, n + r, HorizontalSum(acc[r][m]) + tail);
    }
  }
}

template <int M, typename W>
__attribute__((target("avx2,fma"))) void RowsAvx2(const float* x, const W* w, int64_t K,
                                                  int64_t n0, int64_t n1, const Output& o) {
  constexpr int RB = M <= 2 ? 4 : 2;
  int64_t n = n0;
  for (; n + RB <= n1; n += RB) BlockAvx2<M, RB>(x, w, K, n, o);
  for (; n < n1; ++n) BlockAvx2<M, 1>(x, w, K, n, o);
}
#endif

template <typename W>
RowsFn<W> Pick(SimdIsa isa, int64_t M) {
  static constexpr RowsFn<W> kScalar[] = {RowsScalar<1, W>, RowsScalar<2, W>, RowsScalar<3, W>,
                                          RowsScalar<4, W>};
#if MLA_X86
  static constexpr RowsFn<W> kAvx2[] = {RowsAvx2<1, W>, RowsAvx2<2, W>, RowsAvx2<3, W>,
                                        RowsAvx2<4, W>};
  static constexpr RowsFn<W> kAvx512[] = {RowsAvx512<1, W>, RowsAvx512<2, W>, RowsAvx512<3, W>,
                                          RowsAvx512<4, W>};
  if (isa == SimdIsa::kAvx512) return kAvx512[M - 1];
  if (isa == SimdIsa::kAvx2) return kAvx2[M - 1];
#endif
  return kScalar[M - 1];
}

}  // namespace

bool SimdIsaAvailable(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::kScalar:
      return true;
#if MLA_X86
    case SimdIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
#endif
    default:
      return false;
  }
}

SimdIsa BestSimdIsa() {
  static const SimdIsa best = SimdIsaAvailable(SimdIsa::kAvx512) ? SimdIsa::kAvx512
                              : SimdIsaAvailable(SimdIsa::kAvx2) ? SimdIsa::kAvx2
                                                                 : SimdIsa::kScalar;
  return best;
}

const char* SimdIsaName(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::kAvx512:
      return "avx512";
    case SimdIsa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

namespace {

template <typename W>
void Run(const float* x, const W* w, const float* bias, float* y, int64_t M, int64_t N,
         int64_t K, Epilogue epilogue, bool accumulate, SimdIsa isa) {
  CHECK_GE(M, 1) << "SmallBatchLinear: M = " << M;
  CHECK_GE(K, 1);
  CHECK(epilogue == Epilogue::kNone || bias != nullptr) << "bias epilogue without a bias";
  CHECK(!(accumulate && epilogue == Epilogue::kBiasGelu)) << "GELU with accumulate";
  CHECK(SimdIsaAvailable(isa)) << SimdIsaName(isa) << " is not available on this CPU";
  const Output out{y, bias, N, epilogue, accumulate};
  // Weight rows [n0, n1) against every x row: at most kSmallBatchMaxRows x
  // rows at a time, over panels of weight rows small enough to stay in the
  // core's L2 between the groups of x rows (so memory supplies each weight
  // once per call whatever M is).
  const auto rows = [&](int64_t n0, int64_t n1) {
    if (M <= kSmallBatchMaxRows) {
      Pick<W>(isa, M)(x, w, K, n0, n1, out);
      return;
    }
    const int64_t panel =
        std::max<int64_t>(16, kSmallBatchPanelBytes / (K * static_cast<int64_t>(sizeof(W))) / 16 * 16);
    for (int64_t p0 = n0; p0 < n1; p0 += panel) {
      const int64_t p1 = std::min(n1, p0 + panel);
      for (int64_t m0 = 0; m0 < M; m0 += kSmallBatchMaxRows) {
        const int64_t mb = std::min(kSmallBatchMaxRows, M - m0);
        const Output part{y + m0 * N, bias, N, epilogue, accumulate};
        Pick<W>(isa, mb)(x + m0 * K, w, K, p0, p1, part);
      }
    }
  };
  const bool threaded = N * K * static_cast<int64_t>(sizeof(W)) >= kSmallBatchThreadMinBytes &&
                        omp_get_max_threads() > 1 && !omp_in_parallel();
  if (!threaded) {
    rows(0, N);
    return;
  }
  // Contiguous ranges of 16 rows (whole cache lines of y for any M).
  const int64_t blocks = (N + 15) / 16;
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t n0 = std::min(N, blocks * t / T * 16);
    const int64_t n1 = std::min(N, blocks * (t + 1) / T * 16);
    if (n1 > n0) rows(n0, n1);
  }
}

}  // namespace

void SmallBatchLinear(const float* x, const float* w, const float* bias, float* y, int64_t M,
                      int64_t N, int64_t K, Epilogue epilogue, bool accumulate, SimdIsa isa) {
  Run(x, w, bias, y, M, N, K, epilogue, accumulate, isa);
}

void SmallBatchLinearBf16(const float* x, const uint16_t* w, const float* bias, float* y,
                          int64_t M, int64_t N, int64_t K, Epilogue epilogue, bool accumulate,
                          SimdIsa isa) {
  Run(x, w, bias, y, M, N, K, epilogue, accumulate, isa);
}

}  // namespace mla
