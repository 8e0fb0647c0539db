// The CPU references of the bf16 GEMM path (tests/layers/cuda/bf16_reference.h),
// checked on every machine, so the GPU test's oracle is not first exercised
// on a GPU. A float emulation does the device's arithmetic serially: operands
// rounded by the shared math::RoundToBf16, exact products, fp32 sums, and the
// causal softmax and its backward as layers/cuda/kernels.cu computes them.
// The bounds hold for any summation order, so this order must satisfy them;
// an emulation that skips one bf16 rounding must not (the bounds are tight
// enough to see bf16 rounding).
#include "tests/layers/cuda/bf16_reference.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace mla::cuda::bf16_reference {
namespace {

float R(float x) { return math::RoundToBf16(x); }

// Elements with |got − want| > tol.
int64_t Violations(const std::vector<float>& got, const std::vector<double>& want,
                   const std::vector<double>& tol) {
  EXPECT_EQ(got.size(), want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += std::fabs(got[i] - want[i]) > tol[i];
  return bad;
}

TEST(Bf16ReferenceTest, LinearBoundHoldsForFp32SumsOfRoundedOperands) {
  const int64_t M = 37, N = 48, K = 64;
  auto x = Random(M * K, 11), w = Random(N * K, 12), b = Random(N, 13);
  std::vector<float> y(M * N), unrounded(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float a = 0, u = 0;
      for (int64_t k = 0; k < K; ++k) {
        a += R(x[i * K + k]) * R(w[j * K + k]);
        u += x[i * K + k] * w[j * K + k];
      }
      y[i * N + j] = a + b[j];
      unrounded[i * N + j] = u + b[j];
    }
  const LinearReference ref = ReferenceLinearForward(x, w, b.data(), nullptr, M, N, K);
  EXPECT_EQ(Violations(y, ref.y, ref.tol), 0);
  EXPECT_GT(Violations(unrounded, ref.y, ref.tol), M * N / 2);
}

struct EmulatedAttention {
  std::vector<float> p, y, dv, dq, dk, dqr, dkr;
};

// Forward and backward as the bf16 CudaKernels compute them; `round_p`
// false skips the rounding of P in Y = P·V only.
EmulatedAttention Emulate(const AttentionCase& c, bool round_p) {
  const int B = c.B, T = c.T, H = c.H, D = c.D, P = c.P;
  const int64_t M = static_cast<int64_t>(B) * T, C = static_cast<int64_t>(H) * D;
  EmulatedAttention o;
  o.p.assign(static_cast<size_t>(B) * H * T * T, 0.0f);
  o.y.assign(M * C, 0.0f);
  o.dv.assign(M * C, 0.0f);
  o.dq.assign(M * C, 0.0f);
  o.dk.assign(M * C, 0.0f);
  o.dqr.assign(M * H * P, 0.0f);
  o.dkr.assign(M * P, 0.0f);
  auto Q = [&](int64_t r, int h, int d) { return R(c.q[r * C + h * D + d]); };
  auto K = [&](int64_t r, int h, int d) { return R(c.kv[r * 2 * C + h * D + d]); };
  auto V = [&](int64_t r, int h, int d) { return R(c.kv[r * 2 * C + C + h * D + d]); };
  auto QR = [&](int64_t r, int h, int d) { return R(c.qr[(r * H + h) * P + d]); };
  auto KR = [&](int64_t r, int d) { return R(c.kr[r * P + d]); };
  auto DY = [&](int64_t r, int h, int d) { return R(c.dy[r * C + h * D + d]); };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t r0 = static_cast<int64_t>(b) * T;
      float* S = &o.p[(static_cast<size_t>(b) * H + h) * T * T];
      for (int t = 0; t < T; ++t) {
        float mx = -INFINITY;
        for (int s = 0; s <= t; ++s) {
          float a = 0, r = 0;
          for (int d = 0; d < D; ++d) a += Q(r0 + t, h, d) * K(r0 + s, h, d);
          for (int d = 0; d < P; ++d) r += QR(r0 + t, h, d) * KR(r0 + s, d);
          S[t * T + s] = c.scale * a + c.scale * r;  // two GEMMs, the second with beta = 1
          mx = std::max(mx, S[t * T + s]);
        }
        float sum = 0;
        for (int s = 0; s <= t; ++s) {
          S[t * T + s] = std::exp(S[t * T + s] - mx);
          sum += S[t * T + s];
        }
        const float inv = 1.0f / sum;
        for (int s = 0; s <= t; ++s) S[t * T + s] *= inv;
      }
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          float a = 0;
          for (int s = 0; s < T; ++s)
            a += (round_p ? R(S[t * T + s]) : S[t * T + s]) * V(r0 + s, h, d);
          o.y[(r0 + t) * C + h * D + d] = a;
        }
      std::vector<float> dS(T * T, 0.0f);
      for (int t = 0; t < T; ++t)
        for (int s = 0; s < T; ++s) {
          float a = 0;
          for (int d = 0; d < D; ++d) a += DY(r0 + t, h, d) * V(r0 + s, h, d);
          dS[t * T + s] = a;
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < D; ++d) {
          float a = 0;
          for (int t = 0; t < T; ++t) a += R(S[t * T + s]) * DY(r0 + t, h, d);
          o.dv[(r0 + s) * C + h * D + d] = a;
        }
      for (int t = 0; t < T; ++t) {
        float dot = 0;
        for (int s = 0; s <= t; ++s) dot += S[t * T + s] * dS[t * T + s];
        for (int s = 0; s < T; ++s)
          dS[t * T + s] = s <= t ? S[t * T + s] * (dS[t * T + s] - dot) : 0.0f;
      }
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          float a = 0;
          for (int s = 0; s < T; ++s) a += R(dS[t * T + s]) * K(r0 + s, h, d);
          o.dq[(r0 + t) * C + h * D + d] = c.scale * a;
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < D; ++d) {
          float a = 0;
          for (int t = 0; t < T; ++t) a += R(dS[t * T + s]) * Q(r0 + t, h, d);
          o.dk[(r0 + s) * C + h * D + d] = c.scale * a;
        }
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < P; ++d) {
          float a = 0;
          for (int s = 0; s < T; ++s) a += R(dS[t * T + s]) * KR(r0 + s, d);
          o.dqr[((r0 + t) * H + h) * P + d] = c.scale * a;
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < P; ++d) {
          float a = 0;
          for (int t = 0; t < T; ++t) a += R(dS[t * T + s]) * QR(r0 + t, h, d);
          o.dkr[(r0 + s) * P + d] += c.scale * a;  // the head sum
        }
    }
  return o;
}

void ExpectEmulationWithinBounds(int B, int T, int H, int D, int P) {
  const AttentionCase c = MakeAttentionCase(B, T, H, D, P);
  const EmulatedAttention o = Emulate(c, true);
  const AttentionExpectation e = Bf16AttentionReference(c, o.p);
  EXPECT_EQ(Violations(o.p, e.p_ref, e.p_tol), 0);
  EXPECT_EQ(Violations(o.y, e.y_ref, e.y_tol), 0);
  EXPECT_EQ(Violations(o.dv, e.dv_ref, e.dv_tol), 0);
  EXPECT_EQ(Violations(o.dq, e.dq_ref, e.dq_tol), 0);
  EXPECT_EQ(Violations(o.dk, e.dk_ref, e.dk_tol), 0);
  EXPECT_EQ(Violations(o.dqr, e.dqr_ref, e.dqr_tol), 0);
  EXPECT_EQ(Violations(o.dkr, e.dkr_ref, e.dkr_tol), 0);
}

TEST(Bf16ReferenceTest, AttentionBoundsHoldForStridedViews) {
  ExpectEmulationWithinBounds(2, 13, 4, 16, 0);
}
TEST(Bf16ReferenceTest, AttentionBoundsHoldForSharedRotaryKey) {
  ExpectEmulationWithinBounds(2, 17, 4, 16, 8);
}
TEST(Bf16ReferenceTest, AttentionBoundsHoldForLongRows) {
  ExpectEmulationWithinBounds(1, 70, 2, 8, 4);
}

TEST(Bf16ReferenceTest, AttentionBoundRejectsUnroundedProbabilities) {
  const AttentionCase c = MakeAttentionCase(2, 13, 4, 16, 0);
  const EmulatedAttention o = Emulate(c, false);
  const AttentionExpectation e = Bf16AttentionReference(c, o.p);
  EXPECT_GT(Violations(o.y, e.y_ref, e.y_tol), static_cast<int64_t>(o.y.size()) / 2);
}

}  // namespace
}  // namespace mla::cuda::bf16_reference
