// CudaKernels against CpuKernels, kernel by kernel, on the same inputs: run
// when a GPU is visible, skip with a message otherwise.
//
// Tolerances come from first-order rounding bounds in fp32 (u = 2⁻²⁴): a sum
// of n products computed in any order is within n·u·Σ|terms| of the exact
// value, so two such sums differ by at most 2·n·u·Σ|terms|; element-wise math
// (exp, tanh) adds a few u relative to the magnitude of its result. Chained
// stages (attention) use the normwise form of the same bound against the
// largest element of the reference output.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/cuda/elementwise.h"
#include "tests/layers/cuda/device_vector.h"
#include "tests/device/empty_linear_checks.h"

namespace mla::cuda {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

template <typename T>
using Dev = cuda::testing::DeviceVector<T>;

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> Abs(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

// |gpu − cpu| ≤ tol[i] for every i. Prints the largest error as a fraction
// of its bound and in ulps of |cpu| ("[measured]" lines, collected by the
// device check), so a first GPU run shows how much room each bound leaves,
// e.g. for the fused GELU epilogues, whose accuracy cuBLASLt does not document.
void ExpectWithin(const std::vector<float>& gpu, const std::vector<float>& cpu,
                  const std::vector<double>& tol, const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  int reported = 0;
  double worst = 0, worst_ulps = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double err = std::fabs(static_cast<double>(gpu[i]) - cpu[i]);
    if (err > tol[i] && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << gpu[i] << " cpu " << cpu[i] << " tol "
                    << tol[i];
    if (tol[i] > 0) worst = std::max(worst, err / tol[i]);
    if (cpu[i] != 0) worst_ulps = std::max(worst_ulps, err / (2 * kU * std::fabs(cpu[i])));
  }
  std::printf("[measured] %s %s: largest error %.3g of the bound, %.3g ulp of |cpu|\n",
              ::testing::UnitTest::GetInstance()->current_test_info()->name(), what, worst,
              worst_ulps);
}

// Tolerance 2·n·u·scale[i] + extra_rel·u·|cpu[i]|.
std::vector<double> SumBound(const std::vector<float>& scale, double n,
                             const std::vector<float>& cpu = {}, double extra_rel = 0) {
  std::vector<double> t(scale.size());
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = 2.0 * n * kU * scale[i] + (cpu.empty() ? 0.0 : extra_rel * kU * std::fabs(cpu[i]));
  return t;
}

// Normwise: c·u·max|cpu| for every element.
std::vector<double> NormBound(const std::vector<float>& cpu, double c) {
  double mx = 0;
  for (float x : cpu) mx = std::max(mx, static_cast<double>(std::fabs(x)));
  return std::vector<double>(cpu.size(), c * kU * mx);
}

class CudaKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU parity";
    auto k = CudaKernels::Create();
    ASSERT_TRUE(k.ok()) << k.status();
    gpu_ = std::move(*k);
  }
  // A GEMM cuBLASLt had no algorithm for fails the test that issued it, not
  // the whole binary.
  void TearDown() override {
    if (gpu_ != nullptr) {
      EXPECT_TRUE(gpu_->status().ok()) << gpu_->status();
    }
  }
  CpuKernels cpu_;
  std::unique_ptr<CudaKernels> gpu_;
};

void CheckLinearForward(CpuKernels& cpu, CudaKernels& gpu, int64_t M, int64_t N, int64_t K,
                        Epilogue e, bool acc, int bias_offset) {
  auto x = Random(M * K, 1), w = Random(N * K, 2), b = Random(N + bias_offset, 3),
       y0 = Random(M * N, 4);
  std::vector<float> y_cpu = y0;
  cpu.LinearForward(x.data(), w.data(), b.data() + bias_offset, y_cpu.data(), M, N, K, e, acc);
  // Σ|x||w| + |b| (+ |y0|): the scale of each output's rounding.
  std::vector<float> scale = acc ? Abs(y0) : std::vector<float>(M * N, 0.0f);
  auto ax = Abs(x), aw = Abs(w), ab = Abs(b);
  cpu.LinearForward(ax.data(), aw.data(), ab.data() + bias_offset, scale.data(), M, N, K,
                    e == Epilogue::kNone ? Epilogue::kNone : Epilogue::kBias, true);
  Dev<float> dx(x), dw(w), db(b), dy(y0);
  gpu.LinearForward(dx.get(), dw.get(), db.get() + bias_offset, dy.get(), M, N, K, e, acc);
  // GELU: |GELU'| ≤ 1.13 carries the GEMM error; its own evaluation adds a few u.
  const double carry = e == Epilogue::kBiasGelu ? 1.13 : 1.0;
  ExpectWithin(dy.Host(), y_cpu, SumBound(scale, carry * (K + 2), y_cpu, 8), "y");
}

TEST_F(CudaKernelsTest, LinearForwardPlainMatchesCpu) {
  CheckLinearForward(cpu_, *gpu_, 37, 48, 64, Epilogue::kNone, false, 0);
}
TEST_F(CudaKernelsTest, LinearForwardBiasMatchesCpu) {
  CheckLinearForward(cpu_, *gpu_, 37, 48, 64, Epilogue::kBias, false, 0);
}
TEST_F(CudaKernelsTest, LinearForwardMisalignedBiasMatchesCpu) {
  CheckLinearForward(cpu_, *gpu_, 37, 48, 64, Epilogue::kBias, false, 1);
}
TEST_F(CudaKernelsTest, LinearForwardBiasGeluMatchesCpu) {
  CheckLinearForward(cpu_, *gpu_, 37, 48, 64, Epilogue::kBiasGelu, false, 0);
}
TEST_F(CudaKernelsTest, LinearForwardAccumulateMatchesCpu) {
  CheckLinearForward(cpu_, *gpu_, 33, 40, 24, Epilogue::kBias, true, 0);
}

void CheckLinearBackward(CpuKernels& cpu, CudaKernels& gpu, int64_t M, int64_t N, int64_t K) {
  auto x = Random(M * K, 5), w = Random(N * K, 6), dy = Random(M * N, 7);
  auto dx0 = Random(M * K, 8), dw0 = Random(N * K, 9), db0 = Random(N, 10);
  auto dx = dx0, dw = dw0, db = db0;
  cpu.LinearBackward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), M, N, K,
                     true);
  auto sx = Abs(dx0), sw = Abs(dw0), sb = Abs(db0);
  auto ax = Abs(x), aw = Abs(w), ady = Abs(dy);
  cpu.LinearBackward(ax.data(), aw.data(), ady.data(), sx.data(), sw.data(), sb.data(), M, N, K,
                     true);
  Dev<float> gx(x), gw(w), gdy(dy), gdx(dx0), gdw(dw0), gdb(db0);
  gpu.LinearBackward(gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get(), M, N, K,
                     true);
  ExpectWithin(gdx.Host(), dx, SumBound(sx, N + 1), "dx");
  ExpectWithin(gdw.Host(), dw, SumBound(sw, M + 1), "dw");
  ExpectWithin(gdb.Host(), db, SumBound(sb, M + 2), "db");
}

TEST_F(CudaKernelsTest, LinearBackwardWideWeightMatchesCpu) { CheckLinearBackward(cpu_, *gpu_, 45, 32, 96); }
TEST_F(CudaKernelsTest, LinearBackwardTallWeightMatchesCpu) { CheckLinearBackward(cpu_, *gpu_, 45, 96, 32); }

TEST_F(CudaKernelsTest, EmptyLinearProductsAddNothing) {
  mla::testing::ExpectEmptyLinearProductsAddNothing(*gpu_);
}

// More distinct GEMM shapes than the plan cache holds (decoding meets one per
// cache length): the cache stays at its bound and an evicted shape, planned
// again, still computes the right product.
TEST_F(CudaKernelsTest, PlanCacheStaysBoundedAcrossManyShapes) {
  const int64_t K = 16, N = 8;
  const int64_t shapes = static_cast<int64_t>(LtMatmul::kMaxPlans) + 40;
  auto w = Random(N * K, 40), x = Random(shapes * K, 41);
  Dev<float> gw(w), gx(x), gy(std::vector<float>(shapes * N));
  for (int64_t M = 1; M <= shapes; ++M)
    gpu_->LinearForward(gx.get(), gw.get(), nullptr, gy.get(), M, N, K, Epilogue::kNone, false);
  EXPECT_LE(gpu_->matmul().cached_plans(), static_cast<int64_t>(LtMatmul::kMaxPlans));
  EXPECT_GE(gpu_->matmul().evicted_plans(), 40);
  CheckLinearForward(cpu_, *gpu_, 1, N, K, Epilogue::kNone, false, 0);  // M = 1 was evicted
}

// A GEMM cuBLASLt has no algorithm for (fp32 operands 1 byte off their
// alignment) is a status naming the shape, and NaN in the output, not the
// end of the process. Skips if this cuBLASLt accepts such operands.
TEST_F(CudaKernelsTest, GemmWithoutAlgorithmIsAStatusNamingTheShape) {
  auto own = CudaKernels::Create();  // its status() is expected to go bad
  ASSERT_TRUE(own.ok()) << own.status();
  const int64_t M = 8, N = 16, K = 32;
  Dev<float> x(Random(M * K + 1, 50)), w(Random(N * K, 51)), y(std::vector<float>(M * N, 1.0f));
  const float* odd_x =
      reinterpret_cast<const float*>(reinterpret_cast<const char*>(x.get()) + 1);
  (*own)->LinearForward(odd_x, w.get(), nullptr, y.get(), M, N, K, Epilogue::kNone, false);
  if ((*own)->status().ok()) GTEST_SKIP() << "cuBLASLt ran fp32 operands at 1-byte alignment";
  EXPECT_EQ((*own)->status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE((*own)->status().message().find("m=16 n=8 k=32"), std::string::npos)
      << (*own)->status();
  for (float v : y.Host()) ASSERT_TRUE(std::isnan(v)) << "the unwritten product is not NaN";
}

// Create's probe of cuBLASLt's GELU epilogues: printed for the first GPU runs,
// and the switch follows it.
TEST_F(CudaKernelsTest, GeluEpilogueProbeDecidesTheFusion) {
  std::printf("[measured] GELU epilogue probe: %.3g x 8 ulp of the largest output\n",
              gpu_->gelu_epilogue_error());
  EXPECT_EQ(gpu_->fuses_gelu_epilogues(), gpu_->gelu_epilogue_error() <= 1.0);
  CudaKernelsOptions off;
  off.fuse_gelu_epilogues = false;
  auto unfused = CudaKernels::Create(off);
  ASSERT_TRUE(unfused.ok()) << unfused.status();
  EXPECT_FALSE((*unfused)->fuses_gelu_epilogues());
  EXPECT_EQ((*unfused)->gelu_epilogue_error(), 0.0);
}

TEST_F(CudaKernelsTest, FusedGeluForwardMatchesBiasThenGelu) {
  const int64_t M = 40, N = 64, K = 32;
  auto x = Random(M * K, 11), w = Random(N * K, 12), b = Random(N, 13);
  std::vector<float> pre(M * N), h(M * N), scale(M * N, 0.0f);
  cpu_.LinearForward(x.data(), w.data(), b.data(), pre.data(), M, N, K, Epilogue::kBias, false);
  cpu_.GeluForward(pre.data(), h.data(), M * N);
  auto ax = Abs(x), aw = Abs(w), ab = Abs(b);
  cpu_.LinearForward(ax.data(), aw.data(), ab.data(), scale.data(), M, N, K, Epilogue::kBias, false);
  Dev<float> gx(x), gw(w), gb(b), gpre(std::vector<float>(M * N)), gh(std::vector<float>(M * N));
  gpu_->LinearGeluForward(gx.get(), gw.get(), gb.get(), gpre.get(), gh.get(), M, N, K);
  ExpectWithin(gpre.Host(), pre, SumBound(scale, K + 1), "pre");
  ExpectWithin(gh.Host(), h, SumBound(scale, 1.13 * (K + 1), h, 8), "h");
}

TEST_F(CudaKernelsTest, FusedDGeluBackwardMatchesDataGradThenGeluGrad) {
  const int64_t M = 40, N = 32, K = 64;  // dpre[M,K] = (dy[M,N]·w[N,K]) ∘ GELU'(pre)
  auto dy = Random(M * N, 14), w = Random(N * K, 15), pre = Random(M * K, 16, -3, 3);
  auto db0 = Random(K, 17);
  std::vector<float> dh(M * K), dpre(M * K), db = db0, sdh(M * K);
  cpu_.LinearBackward(nullptr, w.data(), dy.data(), dh.data(), nullptr, nullptr, M, N, K, false);
  cpu_.GeluBackward(pre.data(), dh.data(), dpre.data(), M * K);
  auto ady = Abs(dy), aw = Abs(w);
  cpu_.LinearBackward(nullptr, aw.data(), ady.data(), sdh.data(), nullptr, nullptr, M, N, K, false);
  // |GELU'| ≤ 1.13 on any input.
  std::vector<float> sdpre(M * K), sdb = Abs(db0);
  for (int64_t i = 0; i < M * K; ++i) sdpre[i] = 1.13f * sdh[i];
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < K; ++j) {
      db[j] += dpre[i * K + j];
      sdb[j] += sdpre[i * K + j];
    }
  Dev<float> gdy(dy), gw(w), gpre(pre), gdpre(std::vector<float>(M * K)), gdb(db0);
  gpu_->LinearBackwardDGelu(gdy.get(), gw.get(), gpre.get(), gdpre.get(), gdb.get(), M, N, K);
  ExpectWithin(gdpre.Host(), dpre, SumBound(sdpre, N + 1, dpre, 8), "dpre");
  ExpectWithin(gdb.Host(), db, SumBound(sdb, N + M + 2), "db");
}

TEST_F(CudaKernelsTest, LayerNormMatchesCpu) {
  const int64_t M = 19, C = 200;
  auto x = Random(M * C, 20, -2, 3), w = Random(C, 21), b = Random(C, 22), dy = Random(M * C, 23);
  auto dx0 = Random(M * C, 24), dw0 = Random(C, 25), db0 = Random(C, 26);
  std::vector<float> y(M * C), mean(M), rstd(M);
  cpu_.LayerNormForward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), M, C);
  auto dx = dx0, dw = dw0, db = db0;
  cpu_.LayerNormBackward(dy.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(),
                         dw.data(), db.data(), M, C);
  Dev<float> gx(x), gw(w), gb(b), gy(y), gm(mean), gr(rstd), gdy(dy), gdx(dx0), gdw(dw0), gdb(db0);
  gpu_->LayerNormForward(gx.get(), gw.get(), gb.get(), gy.get(), gm.get(), gr.get(), M, C);
  gpu_->LayerNormBackward(gdy.get(), gx.get(), gw.get(), gm.get(), gr.get(), gdx.get(), gdw.get(),
                          gdb.get(), M, C);
  // Mean and variance are sums of C terms; x̂ = (x−m)·r carries their error to
  // every output, whose scale is |x̂|·|w| + |b| (|x̂| ≤ √C).
  ExpectWithin(gy.Host(), y, NormBound(y, 4.0 * (C + 8)), "y");
  ExpectWithin(gdx.Host(), dx, NormBound(dx, 8.0 * (C + 8)), "dx");
  ExpectWithin(gdw.Host(), dw, NormBound(dw, 8.0 * (M + C + 8)), "dw");
  ExpectWithin(gdb.Host(), db, NormBound(db, 4.0 * (M + 8)), "db");
}

TEST_F(CudaKernelsTest, RmsNormMatchesCpu) {
  const int64_t M = 23, C = 96;
  auto x = Random(M * C, 30), w = Random(C, 31), dy = Random(M * C, 32), dw0 = Random(C, 33);
  std::vector<float> y(M * C), rstd(M), dx(M * C);
  auto dw = dw0;
  cpu_.RmsNormForward(x.data(), w.data(), y.data(), rstd.data(), M, C);
  cpu_.RmsNormBackward(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), M, C);
  Dev<float> gx(x), gw(w), gy(y), gr(rstd), gdy(dy), gdx(dx), gdw(dw0);
  gpu_->RmsNormForward(gx.get(), gw.get(), gy.get(), gr.get(), M, C);
  gpu_->RmsNormBackward(gdy.get(), gx.get(), gw.get(), gr.get(), gdx.get(), gdw.get(), M, C);
  ExpectWithin(gy.Host(), y, NormBound(y, 4.0 * (C + 8)), "y");
  ExpectWithin(gdx.Host(), dx, NormBound(dx, 8.0 * (C + 8)), "dx");
  ExpectWithin(gdw.Host(), dw, NormBound(dw, 8.0 * (M + C + 8)), "dw");
}

TEST_F(CudaKernelsTest, EmbeddingMatchesCpuWithRepeatedTokens) {
  const int B = 3, T = 7, C = 40, V = 5;  // V < B·T: tokens repeat
  std::vector<int32_t> tok(B * T);
  for (int i = 0; i < B * T; ++i) tok[i] = (i * 3) % V;
  auto wte = Random(V * C, 40), wpe = Random(T * C, 41), dx = Random(B * T * C, 42);
  auto dwte0 = Random(V * C, 43), dwpe0 = Random(T * C, 44);
  std::vector<float> x(B * T * C);
  auto dwte = dwte0, dwpe = dwpe0;
  cpu_.EmbeddingForward(tok.data(), wte.data(), wpe.data(), x.data(), B, T, C);
  cpu_.EmbeddingBackward(tok.data(), dx.data(), dwte.data(), dwpe.data(), B, T, C);
  Dev<int32_t> gt(tok);
  Dev<float> gwte(wte), gwpe(wpe), gx(x), gdx(dx), gdwte(dwte0), gdwpe(dwpe0);
  gpu_->EmbeddingForward(gt.get(), gwte.get(), gwpe.get(), gx.get(), B, T, C);
  gpu_->EmbeddingBackward(gt.get(), gdx.get(), gdwte.get(), gdwpe.get(), B, T, C);
  // One addition per element forward (exact same rounding); backward sums at
  // most B·T terms of magnitude ≤ 1 onto values ≤ 1.
  ExpectWithin(gx.Host(), x, std::vector<double>(x.size(), 0.0), "x");
  ExpectWithin(gdwte.Host(), dwte, std::vector<double>(dwte.size(), 2.0 * (B * T + 1) * kU * (B * T + 1)), "dwte");
  ExpectWithin(gdwpe.Host(), dwpe, std::vector<double>(dwpe.size(), 2.0 * (B + 1) * kU * (B + 1)), "dwpe");
}

TEST_F(CudaKernelsTest, RopeForwardAndInverseMatchCpu) {
  const int64_t rows = 2 * 9, ld = 70;
  const int T = 9, heads = 4, dims = 16, pos0 = 5;
  auto x = Random(rows * ld, 50);
  auto fwd = x;
  cpu_.Rope(fwd.data(), ld, rows, T, pos0, heads, dims, 10000.0f, false);
  auto inv = fwd;
  cpu_.Rope(inv.data(), ld, rows, T, pos0, heads, dims, 10000.0f, true);
  Dev<float> g(x);
  gpu_->Rope(g.get(), ld, rows, T, pos0, heads, dims, 10000.0f, false);
  // Same table, same rotation expression: a pair differs only by FMA contraction (2u·|z|).
  ExpectWithin(g.Host(), fwd, std::vector<double>(fwd.size(), 4 * kU), "rotated");
  gpu_->Rope(g.get(), ld, rows, T, pos0, heads, dims, 10000.0f, true);
  ExpectWithin(g.Host(), inv, std::vector<double>(inv.size(), 8 * kU), "restored");
}

// Attention on views with the given strides; q, k, v (and the rotary parts)
// come from one random buffer per operand, like the layers lay them out.
void CheckAttention(CpuKernels& cpu, CudaKernels& gpu, int B, int T, int H, int D, int P,
                    bool packed) {
  const int64_t M = static_cast<int64_t>(B) * T, C = static_cast<int64_t>(H) * D;
  const bool rope = P > 0;
  auto qkv = Random(M * 3 * C, 60), q = Random(M * C, 61), kv = Random(M * 2 * C, 62);
  auto qr = Random(M * H * P, 63), kr = Random(M * P, 64), dy = Random(M * C, 65);
  AttentionViews in;
  in.B = B; in.T = T; in.H = H; in.D = D; in.P = P;
  in.scale = 1.0f / std::sqrt(static_cast<float>(D + P));
  auto bind = [&](AttentionViews& v, float* pqkv, float* pq, float* pkv, float* pqr, float* pkr) {
    if (packed) {
      v.q = pqkv; v.k = pqkv + C; v.v = pqkv + 2 * C;
      v.ld_q = v.ld_k = v.ld_v = 3 * C;
    } else {
      v.q = pq; v.ld_q = C;
      v.k = pkv; v.v = pkv + C; v.ld_k = v.ld_v = 2 * C;
    }
    if (rope) {
      v.q_rope = pqr; v.ld_q_rope = static_cast<int64_t>(H) * P;
      v.k_rope = pkr; v.ld_k_rope = P;
    }
  };
  AttentionViews cin = in, gin = in;
  bind(cin, qkv.data(), q.data(), kv.data(), qr.data(), kr.data());
  std::vector<float> y(M * C), probs(static_cast<size_t>(B) * H * T * T);
  std::vector<float> dq(M * C), dk(M * C), dv(M * C), dqr(M * H * P), dkr(M * P);
  cpu.AttentionForward(cin, y.data(), C, probs.data());
  AttentionGrads cg{dq.data(), C, dk.data(), C, dv.data(), C, rope ? dqr.data() : nullptr,
                    static_cast<int64_t>(H) * P, rope ? dkr.data() : nullptr, P};
  cpu.AttentionBackward(cin, probs.data(), dy.data(), C, cg);

  Dev<float> gqkv(qkv), gq(q), gkv(kv), gqr(qr), gkr(kr), gdy(dy), gy(y), gp(probs);
  Dev<float> gdq(dq), gdk(dk), gdv(dv), gdqr(dqr), gdkr(dkr);
  bind(gin, gqkv.get(), gq.get(), gkv.get(), gqr.get(), gkr.get());
  gpu.AttentionForward(gin, gy.get(), C, gp.get());
  AttentionGrads gg{gdq.get(), C, gdk.get(), C, gdv.get(), C, rope ? gdqr.get() : nullptr,
                    static_cast<int64_t>(H) * P, rope ? gdkr.get() : nullptr, P};
  gpu.AttentionBackward(gin, gp.get(), gdy.get(), C, gg);
  // Scores: D+P terms; softmax: T terms and an exp (relative error ≤ 2·δscore
  // + a few u); P·V: T terms. Backward chains three such products.
  const double fwd = 4.0 * (D + P + T + 16), bwd = 8.0 * (D + P + 2 * T + 16);
  ExpectWithin(gp.Host(), probs, NormBound(probs, fwd), "probs");
  ExpectWithin(gy.Host(), y, NormBound(y, fwd), "y");
  ExpectWithin(gdq.Host(), dq, NormBound(dq, bwd), "dq");
  ExpectWithin(gdk.Host(), dk, NormBound(dk, bwd), "dk");
  ExpectWithin(gdv.Host(), dv, NormBound(dv, bwd), "dv");
  if (rope) {
    ExpectWithin(gdqr.Host(), dqr, NormBound(dqr, bwd), "dq_rope");
    ExpectWithin(gdkr.Host(), dkr, NormBound(dkr, bwd * H), "dk_rope");
  }
}

TEST_F(CudaKernelsTest, AttentionMatchesCpuForPackedQkv) {  // mha, mha_rope
  CheckAttention(cpu_, *gpu_, 2, 13, 4, 16, 0, true);
}
TEST_F(CudaKernelsTest, AttentionMatchesCpuForLatentKv) {  // mla
  CheckAttention(cpu_, *gpu_, 3, 11, 2, 24, 0, false);
}
TEST_F(CudaKernelsTest, AttentionMatchesCpuForSharedRotaryKey) {  // mla_rope
  CheckAttention(cpu_, *gpu_, 2, 17, 4, 16, 8, false);
}
TEST_F(CudaKernelsTest, AttentionMatchesCpuForLongRowsAboveWarpWidth) {
  CheckAttention(cpu_, *gpu_, 1, 70, 2, 8, 4, false);
}

TEST_F(CudaKernelsTest, SoftmaxCrossEntropyMatchesCpuInPlace) {
  const int64_t M = 9, V = 1000;
  auto logits = Random(M * V, 70, -5, 5);
  std::vector<int32_t> targets(M);
  for (int64_t i = 0; i < M; ++i) targets[i] = static_cast<int32_t>((i * 97) % V);
  auto cpu_logits = logits;
  const double loss_cpu = cpu_.SoftmaxCrossEntropy(cpu_logits.data(), targets.data(),
                                                   cpu_logits.data(), M, V, 0.25f);
  Dev<float> g(logits);
  Dev<int32_t> gt(targets);
  const double loss_gpu = gpu_->SoftmaxCrossEntropy(g.get(), gt.get(), g.get(), M, V, 0.25f);
  // Per row: max exact, Σ of V exps (V·u relative), log and one subtraction of
  // values ≤ |max| + log V.
  EXPECT_NEAR(loss_gpu, loss_cpu, M * (2.0 * (V + 8) * kU * (5 + std::log(V))));
  ExpectWithin(g.Host(), cpu_logits, NormBound(cpu_logits, 4.0 * (V + 8)), "dlogits");
}

TEST_F(CudaKernelsTest, AddFillCopyAreExact) {
  const int64_t n = 1000;
  auto x = Random(n, 80), y = Random(n, 81);
  std::vector<float> sum(n), fill(n, 0.5f);
  for (int64_t i = 0; i < n; ++i) sum[i] = y[i] + x[i];
  Dev<float> gx(x), gy(y), gf(y), gc(y);
  gpu_->Add(gx.get(), gy.get(), n);
  gpu_->Fill(gf.get(), 0.5f, n);
  gpu_->Copy(gx.get(), gc.get(), n);
  EXPECT_EQ(gy.Host(), sum);
  EXPECT_EQ(gf.Host(), fill);
  EXPECT_EQ(gc.Host(), x);
}

TEST_F(CudaKernelsTest, SumOfSquaresMatchesDoubleSum) {
  const int64_t n = 300001;
  auto x = Random(n, 90);
  double expect = 0;
  for (float v : x) expect += static_cast<double>(v) * v;
  Dev<float> g(x);
  // Double accumulation: error ≤ n·2⁻⁵³·Σx².
  EXPECT_NEAR(gpu_->SumOfSquares(g.get(), n), expect, 2.0 * n * 1.2e-16 * expect);
}

TEST_F(CudaKernelsTest, AdamWStepMatchesSharedElementUpdate) {
  const int64_t n = 4096;
  auto p = Random(n, 100), m = Random(n, 101), v = Random(n, 102, 0, 1), g = Random(n, 103);
  std::vector<uint8_t> decay(n);
  for (int64_t i = 0; i < n; ++i) decay[i] = i % 3 != 0;
  const auto s = AdamWStepScalars::Make(0.9f, 0.95f, 1e-8f, 0.1f, 3e-4f, 7);
  auto pc = p, mc = m, vc = v;
  for (int64_t i = 0; i < n; ++i)
    AdamWUpdateElement(pc[i], mc[i], vc[i], g[i], decay[i] ? s.decay_factor : 1.0f, s);
  Dev<float> gp(p), gm(m), gv(v), gg(g);
  Dev<uint8_t> gd(decay);
  gpu_->AdamWStep(gp.get(), gm.get(), gv.get(), gg.get(), gd.get(), n, s);
  // The same expression; the device may contract a·b+c into an FMA (one
  // rounding fewer) and its sqrtf/division are correctly rounded: a few u.
  ExpectWithin(gm.Host(), mc, SumBound(Abs(mc), 2), "m");
  ExpectWithin(gv.Host(), vc, SumBound(Abs(vc), 2), "v");
  // p's rounding scales with |p| and with the size of the update.
  std::vector<float> sp(n);
  for (int64_t i = 0; i < n; ++i) sp[i] = std::fabs(p[i]) + std::fabs(pc[i] - p[i]);
  ExpectWithin(gp.Host(), pc, SumBound(sp, 8), "p");
}

}  // namespace
}  // namespace mla::cuda
