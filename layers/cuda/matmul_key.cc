#include "layers/cuda/matmul_key.h"

#include "absl/strings/str_cat.h"

namespace mla::cuda {

int MatmulTypeBytes(MatmulType type) { return type == MatmulType::kF32 ? 4 : 2; }

int PointerAlignment(const void* p) {
  if (p == nullptr) return 0;
  const auto address = reinterpret_cast<uintptr_t>(p);
  int alignment = 1;
  while (alignment < 256 && address % (2 * alignment) == 0) alignment *= 2;
  return alignment;
}

MatmulKey GemmShapeKey(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                       bool accumulate) {
  return MatmulKey{.m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                   .accumulate = accumulate};
}

namespace {

// `key` with the alignments of its operands A, B, D and the bias.
MatmulKey Aligned(MatmulKey key, const void* a, const void* b, const void* c, const void* bias) {
  key.align_a = PointerAlignment(a);
  key.align_b = PointerAlignment(b);
  key.align_c = PointerAlignment(c);
  key.align_bias = PointerAlignment(bias);
  return key;
}

}  // namespace

MatmulKey LinearForwardKey(int64_t M, int64_t N, int64_t K, MatmulEpilogue epilogue,
                           bool accumulate, const void* x, const void* w, const void* bias,
                           const void* y) {
  MatmulKey key = GemmShapeKey(N, M, K, K, K, N, accumulate);
  key.trans_a = true;  // w is stored as column-major wᵀ[K,N]
  key.epilogue = epilogue;
  return Aligned(key, w, x, y, bias);
}

MatmulKey LinearBackwardDataKey(int64_t M, int64_t N, int64_t K, bool accumulate, const void* dy,
                                const void* w, const void* dx) {
  return Aligned(GemmShapeKey(K, M, N, K, N, K, accumulate), w, dy, dx, nullptr);
}

MatmulKey LinearBackwardWeightKey(int64_t M, int64_t N, int64_t K, MatmulEpilogue epilogue,
                                  const void* x, const void* dy, const void* dw,
                                  const void* dbias) {
  MatmulKey key = GemmShapeKey(K, N, M, K, N, K, /*accumulate=*/true);
  key.trans_b = true;  // dy is stored as column-major dyᵀ[N,M]
  key.epilogue = epilogue;
  return Aligned(key, x, dy, dw, dbias);
}

const char* MatmulEpilogueName(MatmulEpilogue epilogue) {
  switch (epilogue) {
    case MatmulEpilogue::kDefault: return "DEFAULT";
    case MatmulEpilogue::kBias: return "BIAS";
    case MatmulEpilogue::kGeluBias: return "GELU_BIAS";
    case MatmulEpilogue::kGeluAuxBias: return "GELU_AUX_BIAS";
    case MatmulEpilogue::kDGeluBGrad: return "DGELU_BGRAD";
    case MatmulEpilogue::kBGradB: return "BGRADB";
  }
  return "?";
}

std::string MatmulKeyToString(const MatmulKey& key) {
  return absl::StrCat("m=", key.m, " n=", key.n, " k=", key.k, " ta=", key.trans_a ? "T" : "N",
                      " tb=", key.trans_b ? "T" : "N", " ld=", key.lda, "/", key.ldb, "/",
                      key.ldc, " batch=", key.batch, " strides=", key.stride_a, "/",
                      key.stride_b, "/", key.stride_c, " epilogue=",
                      MatmulEpilogueName(key.epilogue), " beta=", key.accumulate ? 1 : 0,
                      " type=", key.type == MatmulType::kF32 ? "f32" : "bf16->f32", " align=",
                      key.align_a, "/", key.align_b, "/", key.align_c, "/", key.align_bias, "/", key.align_aux);
}

}  // namespace mla::cuda
