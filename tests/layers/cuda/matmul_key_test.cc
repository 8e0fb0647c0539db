// The cuBLASLt plan key and the row-major → column-major GEMM mapping: host
// code, run on every machine. A plan may only be shared by calls whose keys are
// equal, so every field must take part in equality and hashing.
#include "layers/cuda/matmul_key.h"

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "gtest/gtest.h"

namespace mla::cuda {
namespace {

MatmulKey Base() {
  MatmulKey k;
  k.m = 64; k.n = 32; k.k = 16;
  k.lda = 16; k.ldb = 16; k.ldc = 64;
  k.align_a = k.align_b = k.align_c = 256;
  return k;
}

TEST(MatmulKeyTest, EqualKeysHashEqual) {
  EXPECT_EQ(Base(), Base());
  EXPECT_EQ(absl::Hash<MatmulKey>()(Base()), absl::Hash<MatmulKey>()(Base()));
}

TEST(MatmulKeyTest, EveryFieldDistinguishesPlans) {
  const std::vector<std::function<void(MatmulKey&)>> changes = {
      [](MatmulKey& k) { k.m = 65; },        [](MatmulKey& k) { k.n = 33; },
      [](MatmulKey& k) { k.k = 17; },        [](MatmulKey& k) { k.trans_a = true; },
      [](MatmulKey& k) { k.trans_b = true; }, [](MatmulKey& k) { k.lda = 32; },
      [](MatmulKey& k) { k.ldb = 32; },      [](MatmulKey& k) { k.ldc = 128; },
      [](MatmulKey& k) { k.batch = 2; },     [](MatmulKey& k) { k.stride_a = 8; },
      [](MatmulKey& k) { k.stride_b = 8; },  [](MatmulKey& k) { k.stride_c = 8; },
      [](MatmulKey& k) { k.epilogue = MatmulEpilogue::kBias; },
      [](MatmulKey& k) { k.accumulate = true; },
      [](MatmulKey& k) { k.type = MatmulType::kBF16; },
      [](MatmulKey& k) { k.align_a = 4; },   [](MatmulKey& k) { k.align_b = 4; },
      [](MatmulKey& k) { k.align_c = 4; },   [](MatmulKey& k) { k.align_bias = 16; },
      [](MatmulKey& k) { k.align_aux = 16; },
  };
  absl::flat_hash_set<MatmulKey> plans = {Base()};
  for (size_t i = 0; i < changes.size(); ++i) {
    MatmulKey k = Base();
    changes[i](k);
    EXPECT_NE(k, Base()) << "change " << i;
    EXPECT_TRUE(plans.insert(k).second) << "change " << i << " collides: " << MatmulKeyToString(k);
  }
  EXPECT_EQ(plans.size(), changes.size() + 1);
}

TEST(MatmulKeyTest, PointerAlignmentIsLargestPowerOfTwoUpTo256) {
  alignas(512) static float buffer[256];
  EXPECT_EQ(PointerAlignment(nullptr), 0);
  EXPECT_EQ(PointerAlignment(buffer), 256);
  EXPECT_EQ(PointerAlignment(buffer + 1), 4);
  EXPECT_EQ(PointerAlignment(buffer + 2), 8);
  EXPECT_EQ(PointerAlignment(buffer + 4), 16);
  EXPECT_EQ(PointerAlignment(buffer + 24), 32);
  EXPECT_EQ(PointerAlignment(buffer + 128), 256);
}

// The column-major GEMM a key describes.
struct Gemm {
  int64_t m, n, k;
  bool trans_a, trans_b;
  int64_t lda, ldb, ldc;
  bool accumulate;
};

void ExpectGemm(const MatmulKey& key, const Gemm& want) {
  EXPECT_EQ(key.m, want.m);
  EXPECT_EQ(key.n, want.n);
  EXPECT_EQ(key.k, want.k);
  EXPECT_EQ(key.trans_a, want.trans_a);
  EXPECT_EQ(key.trans_b, want.trans_b);
  EXPECT_EQ(key.lda, want.lda);
  EXPECT_EQ(key.ldb, want.ldb);
  EXPECT_EQ(key.ldc, want.ldc);
  EXPECT_EQ(key.accumulate, want.accumulate);
}

// y[M,N] = x[M,K]·w[N,K]ᵀ is column-major yᵀ[N,M] = (wᵀ)ᵀ·xᵀ: m=N, n=M, k=K,
// A = w read transposed with ld K, B = x with ld K, D with ld N.
TEST(MatmulKeyTest, LinearForwardMapsToTransposedWeightGemm) {
  alignas(256) static float x[8], w[8], y[8], b[8];
  const MatmulKey k = LinearForwardKey(5, 7, 3, MatmulEpilogue::kBias, true, x, w, b + 1, y + 2);
  ExpectGemm(k, {.m = 7, .n = 5, .k = 3, .trans_a = true, .trans_b = false, .lda = 3, .ldb = 3,
                 .ldc = 7, .accumulate = true});
  EXPECT_EQ(k.epilogue, MatmulEpilogue::kBias);
  EXPECT_EQ(k.align_bias, 4);
  EXPECT_EQ(k.align_c, 8);
}

// dx[M,K] = dy[M,N]·w[N,K] is column-major dxᵀ[K,M] = wᵀ[K,N]·dyᵀ[N,M].
TEST(MatmulKeyTest, LinearBackwardDataMapsToPlainGemm) {
  const MatmulKey k = LinearBackwardDataKey(5, 7, 3, false, nullptr, nullptr, nullptr);
  ExpectGemm(k, {.m = 3, .n = 5, .k = 7, .trans_a = false, .trans_b = false, .lda = 3, .ldb = 7,
                 .ldc = 3, .accumulate = false});
}

// dw[N,K] += dyᵀ·x is column-major dwᵀ[K,N] = xᵀ[K,M]·dy[M,N]; the GEMM's k
// dimension is M, the one BGRADB reduces for the bias gradient.
TEST(MatmulKeyTest, LinearBackwardWeightAccumulatesOverRows) {
  const MatmulKey k =
      LinearBackwardWeightKey(5, 7, 3, MatmulEpilogue::kBGradB, nullptr, nullptr, nullptr, nullptr);
  ExpectGemm(k, {.m = 3, .n = 7, .k = 5, .trans_a = false, .trans_b = true, .lda = 3, .ldb = 7,
                 .ldc = 3, .accumulate = true});
  EXPECT_EQ(k.epilogue, MatmulEpilogue::kBGradB);
}

TEST(MatmulKeyTest, ToStringNamesEpilogueAndShape) {
  MatmulKey k = Base();
  k.epilogue = MatmulEpilogue::kGeluAuxBias;
  const std::string s = MatmulKeyToString(k);
  EXPECT_NE(s.find("m=64 n=32 k=16"), std::string::npos) << s;
  EXPECT_NE(s.find("GELU_AUX_BIAS"), std::string::npos) << s;
}

}  // namespace
}  // namespace mla::cuda
