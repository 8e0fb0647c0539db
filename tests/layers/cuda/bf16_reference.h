#pragma once
// CPU references of the bf16 GEMM path for tests/layers/cuda/cuda_kernels_bf16_test.cc
// (checked on the GPU) and tests/layers/cuda/bf16_reference_test.cc (checked on
// every machine against a float emulation of the device arithmetic). Host
// code, no CUDA; header-only test support.
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
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "layers/math/bf16_math.h"
#include "tests/layers/random_values.h"

namespace mla::cuda::bf16_reference {

constexpr double kAccU = 0x1p-23;  // one fp32 tensor-core addition (faithful)
constexpr double kU = 0x1p-24;     // one IEEE fp32 operation in a CUDA kernel
constexpr double kBf16U = 0x1p-8;  // bf16 unit roundoff

using ::mla::testing::Random;

inline double Bf(float x) { return math::RoundToBf16(x); }

// Spread of bf16(z) over z ∈ [z_ref − e, z_ref + e] around bf16(z_ref).
inline double RoundingSpread(double z_ref, double e) {
  const double r = Bf(static_cast<float>(z_ref));
  const double lo = Bf(static_cast<float>(z_ref - e)), hi = Bf(static_cast<float>(z_ref + e));
  return std::max(hi - r, r - lo);
}

// y[M,N] = bf(x)·bf(w)ᵀ + b (+ y0) in double, and its bound n·u·Σ|terms|.
struct LinearReference {
  std::vector<double> y, tol;
};
inline LinearReference ReferenceLinearForward(const std::vector<float>& x,
                                              const std::vector<float>& w, const float* bias,
                                              const std::vector<float>* y0, int64_t M, int64_t N,
                                              int64_t K) {
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

// Attention inputs: q [B·T, H·D] (ld C), k|v packed in [B·T, 2C] rows
// (strided views, cast row by row), optional shared rotary key (mla_rope).
struct AttentionCase {
  int B = 0, T = 0, H = 0, D = 0, P = 0;
  float scale = 0;
  std::vector<float> q, kv, qr, kr, dy;
};

inline AttentionCase MakeAttentionCase(int B, int T, int H, int D, int P) {
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

inline AttentionExpectation Bf16AttentionReference(const AttentionCase& c,
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
      // Σ bf(P_gpu)·x(r0 + j) along row i of P (j = s) or along column i
      // (j = t), over all T in order: the value and Σ|terms|.
      auto p_sums = [&](bool row, int i, auto x) {
        std::pair<double, double> va{0, 0};
        for (int j = 0; j < T; ++j) {
          const double pv = Bf(p_gpu[row ? Pidx(b, h, i, j) : Pidx(b, h, j, i)]) * x(r0 + j);
          va.first += pv;
          va.second += std::fabs(pv);
        }
        return va;
      };
      // Y = bf(P_gpu)·bf(V): T products, one store — P taken from the GPU's
      // own probs output, so both sides round the same fp32 values.
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          const auto [v, a] = p_sums(true, t, [&](int64_t r) { return V(r, h, d); });
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
          const auto [v, a] = p_sums(false, s, [&](int64_t r) { return DY(r, h, d); });
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
      // Σ bf(dS)·x(r0 + j) along row i of dS (j = s = 0 … i) or along column
      // i (j = t = i … T−1), in that order: the value, Σ|terms| and Σ Δz·|x|
      // (the rounding spread of bf(dS), above).
      struct DsSums {
        double v = 0, a = 0, sp = 0;
      };
      auto ds_sums = [&](bool row, int i, auto x) {
        DsSums o;
        for (int j = row ? 0 : i; j <= (row ? i : T - 1); ++j) {
          const int k = row ? i * T + j : j * T + i;
          const double ds = Bf(static_cast<float>(dS[k]));
          o.v += ds * x(r0 + j);
          o.a += std::fabs(ds * x(r0 + j));
          o.sp += spread[k] * std::fabs(x(r0 + j));
        }
        return o;
      };
      // dQ = scale·bf(dS)·bf(K), dK = scale·bf(dS)ᵀ·bf(Q): T products, alpha, store.
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          const DsSums o = ds_sums(true, t, [&](int64_t r) { return Kk(r, h, d); });
          dq_ref[(r0 + t) * C + h * D + d] = scale * o.v;
          dq_tol[(r0 + t) * C + h * D + d] = scale * ((T + 2) * kAccU * o.a + o.sp);
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < D; ++d) {
          const DsSums o = ds_sums(false, s, [&](int64_t r) { return Q(r, h, d); });
          dk_ref[(r0 + s) * C + h * D + d] = scale * o.v;
          dk_tol[(r0 + s) * C + h * D + d] = scale * ((T + 2) * kAccU * o.a + o.sp);
        }
      // Rotary parts: dQ_r like dQ; dK_r summed over heads by a kernel
      // (H more fp32 additions, counted for each head's share).
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < P; ++d) {
          const DsSums o = ds_sums(true, t, [&](int64_t r) { return KR(r, d); });
          dqr_ref[((r0 + t) * H + h) * P + d] = scale * o.v;
          dqr_tol[((r0 + t) * H + h) * P + d] = scale * ((T + 2) * kAccU * o.a + o.sp);
        }
      for (int s = 0; s < T; ++s)
        for (int d = 0; d < P; ++d) {
          const DsSums o = ds_sums(false, s, [&](int64_t r) { return QR(r, h, d); });
          dkr_ref[(r0 + s) * P + d] += scale * o.v;
          dkr_tol[(r0 + s) * P + d] += scale * ((T + 2 + H) * kAccU * o.a + o.sp);
        }
    }
  }
  return e;
}

}  // namespace mla::cuda::bf16_reference
