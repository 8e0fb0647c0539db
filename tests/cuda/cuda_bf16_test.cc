// CudaKernels in bf16 mode (CudaKernelsOptions{Precision::kBf16}) against CPU
// references: run when a GPU is visible, skip with a message otherwise.
//
// Parity with a bf16-aware reference. The reference rounds every GEMM operand
// with math::FloatToBf16Bits, the function the device cast kernels run, so
// both sides multiply the same bf16 values; it then accumulates in double.
// A product of two bf16 values has at most 8 + 8 = 16 significant bits, so it
// is exact in fp32: the GPU's only errors are its fp32 additions. A sum of n
// terms in fp32 is within n·u·Σ|terms| of the exact sum, where u is the
// relative error of one addition. Tensor-core accumulation is documented as
// fp32 but not as round-to-nearest, so u = 2⁻²³ (any faithful rounding),
// not 2⁻²⁴. n counts the K products, the bias or accumulated C, alpha and the
// final store. The double reference's own error (n·2⁻⁵³) is below 1e-9 of
// this bound and is ignored.
//
// Operands the GPU computes itself (attention's P and dS) are rounded from
// fp32 values that differ slightly from the reference's. Rounding is
// monotone, so if |z_gpu − z_ref| ≤ e then bf16(z_gpu) lies in
// [bf16(z_ref − e), bf16(z_ref + e)]: the operand is exact unless a rounding
// boundary falls inside ±e, and then off by at most that step. The tests
// carry that per-element spread Δz into the product bound as Σ Δz·|other|.
//
// fp32 vs bf16 end to end: each rounded operand has relative error ≤ 2⁻⁸
// (bf16 unit roundoff), so a product is off by ≤ (2·2⁻⁸ + 2⁻¹⁶)·|a||b| and a
// sum of K of them by that times Σ|a||b|, plus both sides' fp32 summation.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cuda/bf16_cast_launch.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/cuda/elementwise.h"
#include "layers/math/bf16_math.h"

namespace mla::cuda {
namespace {

constexpr double kAccU = 0x1p-23;  // one fp32 tensor-core addition (faithful)
constexpr double kU = 0x1p-24;     // one IEEE fp32 operation in a CUDA kernel
constexpr double kBf16U = 0x1p-8;  // bf16 unit roundoff

template <typename T>
class Dev {
 public:
  explicit Dev(const std::vector<T>& host) : n_(host.size()) {
    buf_ = *DeviceBuffer<T>::Allocate(static_cast<int64_t>(std::max<size_t>(n_, 1)));
    Upload(host);
  }
  void Upload(const std::vector<T>& host) {
    if (n_ > 0) cudaMemcpy(buf_.data(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  T* get() { return buf_.data(); }
  std::vector<T> Host() {
    std::vector<T> out(n_);
    cudaDeviceSynchronize();
    if (n_ > 0) cudaMemcpy(out.data(), buf_.data(), n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return out;
  }

 private:
  size_t n_;
  DeviceBuffer<T> buf_;
};

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double Bf(float x) { return math::RoundToBf16(x); }

// |got − want| ≤ tol[i] for every i; reports the first few violations.
void ExpectWithin(const std::vector<float>& got, const std::vector<double>& want,
                  const std::vector<double>& tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  int reported = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::fabs(got[i] - want[i]) > tol[i] && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << " reference " << want[i]
                    << " tol " << tol[i];
  }
}

// Spread of bf16(z) over z ∈ [z_ref − e, z_ref + e] around bf16(z_ref).
double RoundingSpread(double z_ref, double e) {
  const double r = Bf(static_cast<float>(z_ref));
  const double lo = Bf(static_cast<float>(z_ref - e)), hi = Bf(static_cast<float>(z_ref + e));
  return std::max(hi - r, r - lo);
}

class CudaBf16Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU bf16 parity";
    auto k = CudaKernels::Create(CudaKernelsOptions{Precision::kBf16});
    ASSERT_TRUE(k.ok()) << k.status();
    gpu_ = std::move(*k);
  }
  std::unique_ptr<CudaKernels> gpu_;
};

TEST_F(CudaBf16Test, CastKernelsRoundLikeTheSharedFunction) {
  std::vector<float> x = Random(5000, 1, -1e3f, 1e3f);
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x7f7f8000u, 0x7f7fffffu, 0x7f800001u,
                        0xff800001u, 0x00008000u, 0x00018000u, 0x007fffffu, 0x80000001u})
    x.push_back(math::FloatFromBits(bits));
  Dev<float> gx(x);
  Dev<uint16_t> gy(std::vector<uint16_t>(x.size()));
  ASSERT_EQ(launch::CastToBf16(gx.get(), gy.get(), static_cast<int64_t>(x.size()), nullptr), 0);
  const std::vector<uint16_t> y = gy.Host();
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(y[i], math::FloatToBf16Bits(x[i])) << i << " " << x[i];
  // Strided rows: 7 rows of 5 columns out of rows of 11.
  const int64_t rows = 7, cols = 5, ld = 11;
  Dev<uint16_t> gs(std::vector<uint16_t>(rows * cols));
  ASSERT_EQ(launch::CastRowsToBf16(gx.get() + 3, ld, rows, cols, gs.get(), nullptr), 0);
  const std::vector<uint16_t> s = gs.Host();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(s[r * cols + c], math::FloatToBf16Bits(x[3 + r * ld + c])) << r << "," << c;
}

// y[M,N] = bf(x)·bf(w)ᵀ + b (+ y0) in double, and its bound n·u·Σ|terms|.
struct LinearReference {
  std::vector<double> y, tol;
};
LinearReference ReferenceLinearForward(const std::vector<float>& x, const std::vector<float>& w,
                                       const float* bias, const std::vector<float>* y0,
                                       int64_t M, int64_t N, int64_t K) {
  LinearReference r;
  r.y.resize(M * N);
  r.tol.resize(M * N);
  // K products, bias, accumulated y0, final store.
  const double n = K + 3;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = Bf(x[i * K + k]) * Bf(w[j * K + k]);
        s += p;
        a += std::fabs(p);
      }
      if (bias != nullptr) {
        s += bias[j];
        a += std::fabs(bias[j]);
      }
      if (y0 != nullptr) {
        s += (*y0)[i * N + j];
        a += std::fabs((*y0)[i * N + j]);
      }
      r.y[i * N + j] = s;
      r.tol[i * N + j] = n * kAccU * a;
    }
  return r;
}

// Bias and weight inside a registered parameter buffer (the training path):
// [bias_offset floats | bias (N) | weight_gap floats | weight (N·K)], so the
// offsets decide the alignment of the bias and of the weight's bf16 shadow.
void CheckLinearForward(CudaKernels& gpu, int64_t M, int64_t N, int64_t K, Epilogue e,
                        bool accumulate, int64_t bias_offset, int64_t weight_gap) {
  auto x = Random(M * K, 11), w = Random(N * K, 12), b = Random(N, 13), y0 = Random(M * N, 14);
  std::vector<float> params(bias_offset, 0.0f);
  params.insert(params.end(), b.begin(), b.end());
  params.resize(params.size() + weight_gap, 0.0f);
  const int64_t w_offset = static_cast<int64_t>(params.size());
  params.insert(params.end(), w.begin(), w.end());
  Dev<float> gparams(params), gx(x), gy(y0);
  ASSERT_TRUE(gpu.SetParameterBuffer(gparams.get(), static_cast<int64_t>(params.size())).ok());
  const float* gb = gparams.get() + bias_offset;
  const float* gw = gparams.get() + w_offset;
  gpu.LinearForward(gx.get(), gw, e == Epilogue::kNone ? nullptr : gb, gy.get(), M, N, K, e,
                    accumulate);
  const LinearReference ref = ReferenceLinearForward(
      x, w, e == Epilogue::kNone ? nullptr : b.data(), accumulate ? &y0 : nullptr, M, N, K);
  ExpectWithin(gy.Host(), ref.y, ref.tol, "y");
}

TEST_F(CudaBf16Test, LinearForwardPlainMatchesBf16Reference) {
  CheckLinearForward(*gpu_, 37, 48, 64, Epilogue::kNone, false, 0, 16);
}
TEST_F(CudaBf16Test, LinearForwardFusedBiasMatchesBf16Reference) {
  // Bias 256-byte aligned (fused BIAS epilogue), shadow at float 64 (128 bytes).
  CheckLinearForward(*gpu_, 37, 48, 64, Epilogue::kBias, false, 0, 16);
}
TEST_F(CudaBf16Test, LinearForwardUnalignedWeightAndBiasMatchBf16Reference) {
  // Bias at float 1 (bias kernel after the GEMM); weight at float 42, so its
  // shadow is only 4-byte aligned; then at float 43 (2-byte aligned).
  CheckLinearForward(*gpu_, 33, 40, 24, Epilogue::kBias, false, 1, 1);
  CheckLinearForward(*gpu_, 33, 40, 24, Epilogue::kBias, false, 1, 2);
}
TEST_F(CudaBf16Test, LinearForwardAccumulateMatchesBf16Reference) {
  CheckLinearForward(*gpu_, 33, 40, 24, Epilogue::kBias, true, 0, 24);
}

TEST_F(CudaBf16Test, WeightOutsideTheParameterBufferIsCastPerCall) {
  const int64_t M = 29, N = 24, K = 40;
  auto x = Random(M * K, 21), w = Random(N * K, 22);
  Dev<float> gother(Random(100, 23)), gx(x), gw(w), gy(std::vector<float>(M * N));
  ASSERT_TRUE(gpu_->SetParameterBuffer(gother.get(), 100).ok());
  gpu_->LinearForward(gx.get(), gw.get(), nullptr, gy.get(), M, N, K, Epilogue::kNone, false);
  const LinearReference ref = ReferenceLinearForward(x, w, nullptr, nullptr, M, N, K);
  ExpectWithin(gy.Host(), ref.y, ref.tol, "y");
}

TEST_F(CudaBf16Test, ShadowWeightsChangeOnlyOnRefresh) {
  const int64_t M = 16, N = 32, K = 48;
  auto x = Random(M * K, 31), w_old = Random(N * K, 32), w_new = Random(N * K, 33);
  Dev<float> gw(w_old), gx(x), gy(std::vector<float>(M * N));
  ASSERT_TRUE(gpu_->SetParameterBuffer(gw.get(), N * K).ok());
  // The optimizer writes new fp32 weights; GEMMs keep the cast of the old ones…
  gpu_->Synchronize();
  gw.Upload(w_new);
  gpu_->LinearForward(gx.get(), gw.get(), nullptr, gy.get(), M, N, K, Epilogue::kNone, false);
  const LinearReference old_ref = ReferenceLinearForward(x, w_old, nullptr, nullptr, M, N, K);
  ExpectWithin(gy.Host(), old_ref.y, old_ref.tol, "y before refresh");
  // …until the refresh after the step.
  gpu_->RefreshLowPrecisionWeights();
  gpu_->LinearForward(gx.get(), gw.get(), nullptr, gy.get(), M, N, K, Epilogue::kNone, false);
  const LinearReference new_ref = ReferenceLinearForward(x, w_new, nullptr, nullptr, M, N, K);
  ExpectWithin(gy.Host(), new_ref.y, new_ref.tol, "y after refresh");
}

TEST_F(CudaBf16Test, SetParameterBufferRejectsBadArguments) {
  Dev<float> g(std::vector<float>(4));
  EXPECT_EQ(gpu_->SetParameterBuffer(nullptr, 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu_->SetParameterBuffer(g.get(), -1).code(), absl::StatusCode::kInvalidArgument);
}

void CheckLinearBackward(CudaKernels& gpu, int64_t M, int64_t N, int64_t K) {
  auto x = Random(M * K, 41), w = Random(N * K, 42), dy = Random(M * N, 43);
  auto dx0 = Random(M * K, 44), dw0 = Random(N * K, 45), db0 = Random(N, 46);
  Dev<float> gw(w), gx(x), gdy(dy), gdx(dx0), gdw(dw0), gdb(db0);
  ASSERT_TRUE(gpu.SetParameterBuffer(gw.get(), N * K).ok());
  gpu.LinearBackward(gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get(), M, N, K,
                     true);
  std::vector<double> dx(M * K), tdx(M * K), dw(N * K), tdw(N * K), db(N), tdb(N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {  // dx = dx0 + bf(dy)·bf(w): N products
      double s = dx0[i * K + k], a = std::fabs(dx0[i * K + k]);
      for (int64_t j = 0; j < N; ++j) {
        const double p = Bf(dy[i * N + j]) * Bf(w[j * K + k]);
        s += p;
        a += std::fabs(p);
      }
      dx[i * K + k] = s;
      tdx[i * K + k] = (N + 2) * kAccU * a;
    }
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) {  // dw = dw0 + bf(dy)ᵀ·bf(x): M products
      double s = dw0[j * K + k], a = std::fabs(dw0[j * K + k]);
      for (int64_t i = 0; i < M; ++i) {
        const double p = Bf(dy[i * N + j]) * Bf(x[i * K + k]);
        s += p;
        a += std::fabs(p);
      }
      dw[j * K + k] = s;
      tdw[j * K + k] = (M + 2) * kAccU * a;
    }
  for (int64_t j = 0; j < N; ++j) {  // db = db0 + Σ dy, from the fp32 dy (no rounding to bf16)
    double s = db0[j], a = std::fabs(db0[j]);
    for (int64_t i = 0; i < M; ++i) {
      s += dy[i * N + j];
      a += std::fabs(dy[i * N + j]);
    }
    db[j] = s;
    tdb[j] = (M + 2) * kU * a;
  }
  ExpectWithin(gdx.Host(), dx, tdx, "dx");
  ExpectWithin(gdw.Host(), dw, tdw, "dw");
  ExpectWithin(gdb.Host(), db, tdb, "db");
}

TEST_F(CudaBf16Test, LinearBackwardWideWeightMatchesBf16Reference) {
  CheckLinearBackward(*gpu_, 45, 32, 96);
}
TEST_F(CudaBf16Test, LinearBackwardTallWeightMatchesBf16Reference) {
  CheckLinearBackward(*gpu_, 45, 96, 32);
}

// GELU in double, tanh form (docs/model.md), and its derivative.
double GeluRef(double u) {
  const double z = std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u);
  return 0.5 * u * (1.0 + std::tanh(z));
}
double GeluGradRef(double u) {
  const double z = std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u);
  const double t = std::tanh(z);
  const double dz = std::sqrt(2.0 / M_PI) * (1.0 + 3 * 0.044715 * u * u);
  return 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * dz;
}
// The fp32 GELU (the epilogue's or the shared kernel's) evaluates a handful of
// products and sums and a tanh through exp: a few u relative to the largest
// intermediate, which for GELU is ≤ |u| (the 0.5·u·(1 + t) product can
// cancel) and for GELU' ≤ 1 + 0.5·|u|·dz. 8u of those, as in
// cuda_kernels_test.
constexpr double kGeluEvalU = 8 * kU;
constexpr double kGeluMaxSlope = 1.13;  // max |GELU'| over the reals

TEST_F(CudaBf16Test, FusedGeluForwardMatchesBf16Reference) {
  const int64_t M = 40, N = 64, K = 32;
  auto x = Random(M * K, 71), w = Random(N * K, 72), b = Random(N, 73);
  std::vector<float> params(b);
  params.resize(N + 16, 0.0f);  // bias 256-byte aligned, weight at float N + 16
  params.insert(params.end(), w.begin(), w.end());
  Dev<float> gparams(params), gx(x), gpre(std::vector<float>(M * N)),
      gh(std::vector<float>(M * N));
  ASSERT_TRUE(gpu_->SetParameterBuffer(gparams.get(), static_cast<int64_t>(params.size())).ok());
  gpu_->LinearGeluForward(gx.get(), gparams.get() + N + 16, gparams.get(), gpre.get(), gh.get(),
                          M, N, K);
  const LinearReference pre = ReferenceLinearForward(x, w, b.data(), nullptr, M, N, K);
  std::vector<double> h(M * N), th(M * N);
  for (int64_t i = 0; i < M * N; ++i) {
    h[i] = GeluRef(pre.y[i]);
    th[i] = kGeluMaxSlope * pre.tol[i] + kGeluEvalU * (std::fabs(h[i]) + std::fabs(pre.y[i]));
  }
  ExpectWithin(gpre.Host(), pre.y, pre.tol, "pre");
  ExpectWithin(gh.Host(), h, th, "h");
}

TEST_F(CudaBf16Test, FusedDGeluBackwardMatchesBf16Reference) {
  const int64_t M = 40, N = 32, K = 64;  // dpre[M,K] = (dy[M,N]·w[N,K]) ∘ GELU'(pre)
  auto dy = Random(M * N, 74), w = Random(N * K, 75), pre = Random(M * K, 76, -3, 3);
  auto db0 = Random(K, 77);
  Dev<float> gw(w), gdy(dy), gpre(pre), gdpre(std::vector<float>(M * K)), gdb(db0);
  ASSERT_TRUE(gpu_->SetParameterBuffer(gw.get(), N * K).ok());
  gpu_->LinearBackwardDGelu(gdy.get(), gw.get(), gpre.get(), gdpre.get(), gdb.get(), M, N, K);
  std::vector<double> dpre(M * K), tdpre(M * K), db(db0.begin(), db0.end()), tdb(K);
  std::vector<double> adb(K);
  for (int64_t k = 0; k < K; ++k) adb[k] = std::fabs(db0[k]);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      double dh = 0, a = 0;
      for (int64_t j = 0; j < N; ++j) {  // N products, one store
        const double p = Bf(dy[i * N + j]) * Bf(w[j * K + k]);
        dh += p;
        a += std::fabs(p);
      }
      const double u = pre[i * K + k];
      const double dz = std::sqrt(2.0 / M_PI) * (1.0 + 3 * 0.044715 * u * u);
      const int64_t o = i * K + k;
      dpre[o] = dh * GeluGradRef(u);
      tdpre[o] = kGeluMaxSlope * (N + 1) * kAccU * a +
                 kGeluEvalU * (1.0 + 0.5 * std::fabs(u) * dz) * std::fabs(dh) +
                 kU * std::fabs(dpre[o]);  // the product dh·GELU'
      db[k] += dpre[o];
      adb[k] += std::fabs(dpre[o]);
      tdb[k] += tdpre[o];  // each term's own error carries into the sum
    }
  // The bias gradient sums M fp32 terms in the epilogue (or the column-sum
  // kernel), then one add into db.
  for (int64_t k = 0; k < K; ++k) tdb[k] += (M + 2) * kAccU * adb[k];
  ExpectWithin(gdpre.Host(), dpre, tdpre, "dpre");
  ExpectWithin(gdb.Host(), db, tdb, "db");
}

// Attention inputs: q [B·T, H·D] (ld C), k|v packed in [B·T, 2C] rows
// (strided views, cast row by row), optional shared rotary key (mla_rope).
struct AttentionCase {
  int B = 0, T = 0, H = 0, D = 0, P = 0;
  float scale = 0;
  std::vector<float> q, kv, qr, kr, dy;
};

AttentionCase MakeAttentionCase(int B, int T, int H, int D, int P) {
  AttentionCase c;
  c.B = B; c.T = T; c.H = H; c.D = D; c.P = P;
  c.scale = 1.0f / std::sqrt(static_cast<float>(D + P));
  const int64_t M = static_cast<int64_t>(B) * T, C = static_cast<int64_t>(H) * D;
  c.q = Random(M * C, 51);
  c.kv = Random(M * 2 * C, 52);
  c.qr = Random(M * H * P, 53);
  c.kr = Random(M * P, 54);
  c.dy = Random(M * C, 55);
  return c;
}

// Reference values and bounds of every attention output (layouts as the
// kernels write them), given the probs the implementation under test
// produced: P and dS are the two operands it computes itself.
struct AttentionExpectation {
  std::vector<double> p_ref, p_tol, y_ref, y_tol, dv_ref, dv_tol, dq_ref, dq_tol, dk_ref, dk_tol,
      dqr_ref, dqr_tol, dkr_ref, dkr_tol;
};

AttentionExpectation Bf16AttentionReference(const AttentionCase& c,
                                            const std::vector<float>& p_gpu) {
  const int B = c.B, T = c.T, H = c.H, D = c.D, P = c.P;
  const int64_t M = static_cast<int64_t>(B) * T, C = static_cast<int64_t>(H) * D;
  const double scale = c.scale;  // the float both sides multiply by
  const std::vector<float>&q = c.q, &kv = c.kv, &qr = c.qr, &kr = c.kr, &dy = c.dy;
  AttentionExpectation e;
  auto& [p_ref, p_tol, y_ref, y_tol, dv_ref, dv_tol, dq_ref, dq_tol, dk_ref, dk_tol, dqr_ref,
         dqr_tol, dkr_ref, dkr_tol] = e;
  p_ref.assign(p_gpu.size(), 0.0);
  p_tol.assign(p_gpu.size(), 0.0);
  for (auto* v : {&y_ref, &y_tol, &dv_ref, &dv_tol, &dq_ref, &dq_tol, &dk_ref, &dk_tol})
    v->assign(M * C, 0.0);
  for (auto* v : {&dqr_ref, &dqr_tol}) v->assign(M * H * P, 0.0);
  for (auto* v : {&dkr_ref, &dkr_tol}) v->assign(M * P, 0.0);
  auto Q = [&](int64_t r, int h, int d) { return Bf(q[r * C + h * D + d]); };
  auto Kk = [&](int64_t r, int h, int d) { return Bf(kv[r * 2 * C + h * D + d]); };
  auto V = [&](int64_t r, int h, int d) { return Bf(kv[r * 2 * C + C + h * D + d]); };
  auto QR = [&](int64_t r, int h, int d) { return Bf(qr[(r * H + h) * P + d]); };
  auto KR = [&](int64_t r, int d) { return Bf(kr[r * P + d]); };
  auto DY = [&](int64_t r, int h, int d) { return Bf(dy[r * C + h * D + d]); };
  auto Pidx = [&](int b, int h, int t, int s) {
    return ((static_cast<int64_t>(b) * H + h) * T + t) * T + s;
  };

  for (int b = 0; b < B; ++b) {
    const int64_t r0 = static_cast<int64_t>(b) * T;
    for (int h = 0; h < H; ++h) {
      // Scores and softmax. S: D (+P) products, alpha, the accumulate of the
      // rotary GEMM, two stores.
      std::vector<double> S(T * T), dP(T * T), eS(T * T);
      for (int t = 0; t < T; ++t) {
        double mx = -INFINITY, dmax = 0;
        for (int s = 0; s <= t; ++s) {
          double v = 0, a = 0;
          for (int d = 0; d < D; ++d) {
            v += Q(r0 + t, h, d) * Kk(r0 + s, h, d);
            a += std::fabs(Q(r0 + t, h, d) * Kk(r0 + s, h, d));
          }
          for (int d = 0; d < P; ++d) {
            v += QR(r0 + t, h, d) * KR(r0 + s, d);
            a += std::fabs(QR(r0 + t, h, d) * KR(r0 + s, d));
          }
          S[t * T + s] = scale * v;
          eS[t * T + s] = (D + P + 4) * kAccU * scale * a;
          mx = std::max(mx, S[t * T + s]);
          dmax = std::max(dmax, eS[t * T + s]);
        }
        double z = 0, range = 0;
        for (int s = 0; s <= t; ++s) {
          z += std::exp(S[t * T + s] - mx);
          range = std::max(range, mx - S[t * T + s]);
        }
        // p = e^{S−m}/Σe^{S−m}: score errors ≤ δ move p by ≤ p·(e^{2δ} − 1).
        // The fp32 kernel adds, relative to p: for the numerator and (as a
        // bound for every term) the denominator, 2⁻²² for expf (2 ulp) and
        // u·(|S−m| + 1) for the subtraction; t·u for the row sum; 2u for the
        // reciprocal and the product.
        const double eval = 2 * (0x1p-22 + kU * (range + 1)) + (t + 2) * kU;
        for (int s = 0; s <= t; ++s) {
          const int64_t i = Pidx(b, h, t, s);
          p_ref[i] = std::exp(S[t * T + s] - mx) / z;
          p_tol[i] = p_ref[i] * (std::expm1(2 * dmax) + eval) * (1 + 1e-6);
        }
      }
      // Y = bf(P_gpu)·bf(V): T products, one store — P taken from the GPU's
      // own probs output, so both sides round the same fp32 values.
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          double v = 0, a = 0;
          for (int s = 0; s < T; ++s) {
            const double pv = Bf(p_gpu[Pidx(b, h, t, s)]) * V(r0 + s, h, d);
            v += pv;
            a += std::fabs(pv);
          }
          y_ref[(r0 + t) * C + h * D + d] = v;
          y_tol[(r0 + t) * C + h * D + d] = (T + 1) * kAccU * a;
        }
      // Backward from the GPU's probs. dP = bf(dY)·bf(V)ᵀ (D products);
      // dV = bf(P)ᵀ·bf(dY) (T products).
      std::vector<double> edP(T * T);
      for (int t = 0; t < T; ++t)
        for (int s = 0; s < T; ++s) {
          double v = 0, a = 0;
          for (int d = 0; d < D; ++d) {
            v += DY(r0 + t, h, d) * V(r0 + s, h, d);
            a += std::fabs(DY(r0 + t, h, d) * V(r0 + s, h, d));
          }
          dP[t * T + s] = v;
          edP[t * T + s] = (D + 1) * kAccU * a;
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < D; ++d) {
          double v = 0, a = 0;
          for (int t = 0; t < T; ++t) {
            const double pv = Bf(p_gpu[Pidx(b, h, t, s)]) * DY(r0 + t, h, d);
            v += pv;
            a += std::fabs(pv);
          }
          dv_ref[(r0 + s) * C + h * D + d] = v;
          dv_tol[(r0 + s) * C + h * D + d] = (T + 1) * kAccU * a;
        }
      // dS = P∘(dP − Σ P·dP) in the fp32 kernel, from the same P: its error
      // carries dP's error and adds the row sum's (t terms) and two roundings.
      std::vector<double> dS(T * T, 0.0), spread(T * T, 0.0);
      for (int t = 0; t < T; ++t) {
        double rd = 0, erd = 0, ard = 0;
        for (int s = 0; s <= t; ++s) {
          const double p = p_gpu[Pidx(b, h, t, s)];
          rd += p * dP[t * T + s];
          ard += std::fabs(p * dP[t * T + s]);
          erd += p * edP[t * T + s];
        }
        erd += (t + 2) * kU * ard;
        for (int s = 0; s <= t; ++s) {
          const double p = p_gpu[Pidx(b, h, t, s)];
          dS[t * T + s] = p * (dP[t * T + s] - rd);
          const double e = p * (edP[t * T + s] + erd) +
                           2 * kU * p * (std::fabs(dP[t * T + s]) + std::fabs(rd));
          spread[t * T + s] = RoundingSpread(dS[t * T + s], e);
        }
      }
      // dQ = scale·bf(dS)·bf(K), dK = scale·bf(dS)ᵀ·bf(Q): T products, alpha, store.
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          double v = 0, a = 0, sp = 0;
          for (int s = 0; s <= t; ++s) {
            const double ds = Bf(static_cast<float>(dS[t * T + s]));
            v += ds * Kk(r0 + s, h, d);
            a += std::fabs(ds * Kk(r0 + s, h, d));
            sp += spread[t * T + s] * std::fabs(Kk(r0 + s, h, d));
          }
          dq_ref[(r0 + t) * C + h * D + d] = scale * v;
          dq_tol[(r0 + t) * C + h * D + d] = scale * ((T + 2) * kAccU * a + sp);
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < D; ++d) {
          double v = 0, a = 0, sp = 0;
          for (int t = s; t < T; ++t) {
            const double ds = Bf(static_cast<float>(dS[t * T + s]));
            v += ds * Q(r0 + t, h, d);
            a += std::fabs(ds * Q(r0 + t, h, d));
            sp += spread[t * T + s] * std::fabs(Q(r0 + t, h, d));
          }
          dk_ref[(r0 + s) * C + h * D + d] = scale * v;
          dk_tol[(r0 + s) * C + h * D + d] = scale * ((T + 2) * kAccU * a + sp);
        }
      // Rotary parts: dQ_r like dQ; dK_r summed over heads by a kernel
      // (H more fp32 additions, counted for each head's share).
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < P; ++d) {
          double v = 0, a = 0, sp = 0;
          for (int s = 0; s <= t; ++s) {
            const double ds = Bf(static_cast<float>(dS[t * T + s]));
            v += ds * KR(r0 + s, d);
            a += std::fabs(ds * KR(r0 + s, d));
            sp += spread[t * T + s] * std::fabs(KR(r0 + s, d));
          }
          dqr_ref[((r0 + t) * H + h) * P + d] = scale * v;
          dqr_tol[((r0 + t) * H + h) * P + d] = scale * ((T + 2) * kAccU * a + sp);
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < P; ++d) {
          double v = 0, a = 0, sp = 0;
          for (int t = s; t < T; ++t) {
            const double ds = Bf(static_cast<float>(dS[t * T + s]));
            v += ds * QR(r0 + t, h, d);
            a += std::fabs(ds * QR(r0 + t, h, d));
            sp += spread[t * T + s] * std::fabs(QR(r0 + t, h, d));
          }
          dkr_ref[(r0 + s) * P + d] += scale * v;
          dkr_tol[(r0 + s) * P + d] += scale * ((T + 2 + H) * kAccU * a + sp);
        }
    }
  }
  return e;
}

void CheckAttention(CudaKernels& gpu, int B, int T, int H, int D, int P) {
  const AttentionCase c = MakeAttentionCase(B, T, H, D, P);
  const int64_t M = static_cast<int64_t>(B) * T, C = static_cast<int64_t>(H) * D;
  const bool rope = P > 0;
  AttentionViews in;
  in.B = B; in.T = T; in.H = H; in.D = D; in.P = P;
  in.scale = c.scale;
  Dev<float> gq(c.q), gkv(c.kv), gqr(c.qr), gkr(c.kr), gdy(c.dy), gy(std::vector<float>(M * C));
  Dev<float> gp(std::vector<float>(static_cast<size_t>(B) * H * T * T));
  Dev<float> gdq(std::vector<float>(M * C)), gdk(std::vector<float>(M * C)),
      gdv(std::vector<float>(M * C)), gdqr(std::vector<float>(M * H * P)),
      gdkr(std::vector<float>(M * P));
  in.q = gq.get(); in.ld_q = C;
  in.k = gkv.get(); in.v = gkv.get() + C; in.ld_k = in.ld_v = 2 * C;
  if (rope) {
    in.q_rope = gqr.get(); in.ld_q_rope = static_cast<int64_t>(H) * P;
    in.k_rope = gkr.get(); in.ld_k_rope = P;
  }
  gpu.AttentionForward(in, gy.get(), C, gp.get());
  AttentionGrads g{gdq.get(), C, gdk.get(), C, gdv.get(), C, rope ? gdqr.get() : nullptr,
                   static_cast<int64_t>(H) * P, rope ? gdkr.get() : nullptr, P};
  gpu.AttentionBackward(in, gp.get(), gdy.get(), C, g);
  const std::vector<float> p_gpu = gp.Host();
  const AttentionExpectation e = Bf16AttentionReference(c, p_gpu);
  ExpectWithin(p_gpu, e.p_ref, e.p_tol, "probs");
  ExpectWithin(gy.Host(), e.y_ref, e.y_tol, "y");
  ExpectWithin(gdv.Host(), e.dv_ref, e.dv_tol, "dv");
  ExpectWithin(gdq.Host(), e.dq_ref, e.dq_tol, "dq");
  ExpectWithin(gdk.Host(), e.dk_ref, e.dk_tol, "dk");
  if (rope) {
    ExpectWithin(gdqr.Host(), e.dqr_ref, e.dqr_tol, "dq_rope");
    ExpectWithin(gdkr.Host(), e.dkr_ref, e.dkr_tol, "dk_rope");
  }
}

TEST_F(CudaBf16Test, AttentionMatchesBf16ReferenceForStridedViews) {  // mla
  CheckAttention(*gpu_, 2, 13, 4, 16, 0);
}
TEST_F(CudaBf16Test, AttentionMatchesBf16ReferenceForSharedRotaryKey) {  // mla_rope
  CheckAttention(*gpu_, 2, 17, 4, 16, 8);
}
TEST_F(CudaBf16Test, AttentionMatchesBf16ReferenceForLongRows) {
  CheckAttention(*gpu_, 1, 70, 2, 8, 4);
}

// fp32 and bf16 CudaKernels on the same Linear: within the bf16 operand
// rounding bound, and actually different (the bf16 path is taken).
TEST_F(CudaBf16Test, Bf16LinearIsWithinOperandRoundingOfFp32) {
  const int64_t M = 64, N = 96, K = 128;
  auto x = Random(M * K, 61), w = Random(N * K, 62), b = Random(N, 63);
  auto fp32 = CudaKernels::Create();
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  Dev<float> gx(x), gw(w), gb(b), y32(std::vector<float>(M * N)), y16(std::vector<float>(M * N));
  ASSERT_TRUE(gpu_->SetParameterBuffer(gw.get(), N * K).ok());
  (*fp32)->LinearForward(gx.get(), gw.get(), gb.get(), y32.get(), M, N, K, Epilogue::kBias, false);
  gpu_->LinearForward(gx.get(), gw.get(), gb.get(), y16.get(), M, N, K, Epilogue::kBias, false);
  const std::vector<float> a = y32.Host(), c = y16.Host();
  std::vector<double> want(a.begin(), a.end()), tol(M * N);
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = std::fabs(b[j]);
      for (int64_t k = 0; k < K; ++k)
        s += std::fabs(static_cast<double>(x[i * K + k]) * w[j * K + k]);
      // Operand rounding, plus both sides' fp32 sums (K + 3 roundings each;
      // the bf16 side's terms are up to (1 + 2⁻⁸)² larger).
      const double rounded = (1 + kBf16U) * (1 + kBf16U);
      tol[i * N + j] = (2 * kBf16U + kBf16U * kBf16U) * s + (1 + rounded) * (K + 3) * kAccU * s;
      worst = std::max(worst, std::fabs(static_cast<double>(c[i * N + j]) - a[i * N + j]) /
                                  ((K + 3) * kAccU * 2 * s));
    }
  ExpectWithin(c, want, tol, "y bf16 vs fp32");
  // Some output differs by more than fp32 summation alone could explain.
  EXPECT_GT(worst, 1.0);
}

}  // namespace
}  // namespace mla::cuda
