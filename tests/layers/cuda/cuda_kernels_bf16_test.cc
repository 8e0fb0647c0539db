// CudaKernels in bf16 mode (CudaKernelsOptions{Precision::kBf16}) against the
// CPU references of tests/layers/cuda/bf16_reference.h (where the tolerances are
// derived): run when a GPU is visible, skip with a message otherwise.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cuda/bf16_cast_launch.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/cuda/elementwise.h"
#include "layers/math/bf16_math.h"
#include "tests/layers/cuda/bf16_reference.h"
#include "tests/layers/cuda/device_vector.h"

namespace mla::cuda {
namespace {

using namespace bf16_reference;

template <typename T>
using Dev = cuda::testing::DeviceVector<T>;

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
  // init + Σ_{i<n} term(i) in double, in order, and |init| + Σ|term(i)|.
  auto accumulate = [](double init, int64_t n, auto term) {
    double s = init, a = std::fabs(init);
    for (int64_t i = 0; i < n; ++i) {
      const double p = term(i);
      s += p;
      a += std::fabs(p);
    }
    return std::pair{s, a};
  };
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {  // dx = dx0 + bf(dy)·bf(w): N products
      const auto [s, a] = accumulate(dx0[i * K + k], N, [&](int64_t j) {
        return Bf(dy[i * N + j]) * Bf(w[j * K + k]);
      });
      dx[i * K + k] = s;
      tdx[i * K + k] = (N + 2) * kAccU * a;
    }
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) {  // dw = dw0 + bf(dy)ᵀ·bf(x): M products
      const auto [s, a] = accumulate(dw0[j * K + k], M, [&](int64_t i) {
        return Bf(dy[i * N + j]) * Bf(x[i * K + k]);
      });
      dw[j * K + k] = s;
      tdw[j * K + k] = (M + 2) * kAccU * a;
    }
  for (int64_t j = 0; j < N; ++j) {  // db = db0 + Σ dy, from the fp32 dy (no rounding to bf16)
    const auto [s, a] =
        accumulate(db0[j], M, [&](int64_t i) { return static_cast<double>(dy[i * N + j]); });
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
