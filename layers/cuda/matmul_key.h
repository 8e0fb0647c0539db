#pragma once
// MatmulKey: everything that decides a cuBLASLt matmul plan (descriptors,
// layouts, the heuristic's algorithm) — the GEMM as cuBLASLt sees it
// (column-major m×n×k, transposes, leading dimensions, batch strides), the
// epilogue, whether C is accumulated (beta = 1), the element type and the
// pointer alignments the heuristic was promised. Two calls with equal keys may
// share one cached plan; any difference in a field needs its own plan.
//
// Also the mapping of the kernel interface's row-major Linear products onto
// column-major GEMMs (row-major X[M,K] is the column-major matrix Xᵀ[K,M]).
// Pure host code with no CUDA dependency, so it is built and tested on every
// machine. Value types; thread compatible.
#include <cstdint>
#include <string>
#include <utility>

namespace mla::cuda {

// cuBLASLt epilogues used by the backend (named as in cublasLt.h).
enum class MatmulEpilogue : uint8_t {
  kDefault,      // D = αAB + βC
  kBias,         // + bias per row of D (per output feature)
  kGeluBias,     // GELU(· + bias)
  kGeluAuxBias,  // GELU(· + bias), pre-activation stored to aux
  kDGeluBGrad,   // D = (AB)∘GELU'(aux), bias gradient = Σ over columns of D
  kBGradB,       // D = AB, bias gradient = Σ of B over the GEMM's k dimension
};

// Element type of the A and B operands. C and D are fp32 for both (fp32
// accumulation and outputs; bias and aux follow D): kBF16 is the mixed
// precision GEMM, bfloat16 × bfloat16 → fp32.
enum class MatmulType : uint8_t { kF32, kBF16 };

// Bytes per A/B element (4 or 2).
int MatmulTypeBytes(MatmulType type);

struct MatmulKey {
  int64_t m = 0, n = 0, k = 0;        // column-major D[m,n] = op(A)[m,k]·op(B)[k,n]
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;  // D has C's layout
  int batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  MatmulEpilogue epilogue = MatmulEpilogue::kDefault;
  bool accumulate = false;            // beta = 1 (else 0)
  MatmulType type = MatmulType::kF32;  // of A and B
  // Largest power of two (≤ 256) dividing each pointer's address; 0 for an
  // absent pointer. The heuristic only returns algorithms valid for these.
  int align_a = 0, align_b = 0, align_c = 0, align_bias = 0, align_aux = 0;

  bool operator==(const MatmulKey&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const MatmulKey& key) {
    return H::combine(std::move(h), key.m, key.n, key.k, key.trans_a, key.trans_b, key.lda,
                      key.ldb, key.ldc, key.batch, key.stride_a, key.stride_b, key.stride_c,
                      key.epilogue, key.accumulate, key.type, key.align_a, key.align_b,
                      key.align_c, key.align_bias, key.align_aux);
  }
};

// Largest power of two ≤ 256 that divides the address (0 for null).
int PointerAlignment(const void* p);

// The fields every GEMM's key sets: the column-major shape D[m,n] =
// op(A)[m,k]·op(B)[k,n], the leading dimensions and beta (1 if `accumulate`);
// the rest keep their defaults.
MatmulKey GemmShapeKey(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                       bool accumulate);

// The Linear keys below describe fp32 operands (type kF32); the bf16 path sets
// `type` to kBF16 and passes its bfloat16 operand pointers for the alignments.
//
// y[M,N] (+)= x[M,K]·w[N,K]ᵀ (+ bias): column-major yᵀ[N,M] = op(wᵀ)ᵀ·xᵀ,
// A = w (transposed), B = x.
MatmulKey LinearForwardKey(int64_t M, int64_t N, int64_t K, MatmulEpilogue epilogue,
                           bool accumulate, const void* x, const void* w, const void* bias,
                           const void* y);
// dx[M,K] (+)= dy[M,N]·w[N,K]: column-major dxᵀ[K,M] = wᵀ[K,N]·dyᵀ[N,M], A = w, B = dy.
MatmulKey LinearBackwardDataKey(int64_t M, int64_t N, int64_t K, bool accumulate, const void* dy,
                                const void* w, const void* dx);
// dw[N,K] += dy[M,N]ᵀ·x[M,K]: column-major dwᵀ[K,N] = xᵀ[K,M]·dy[M,N], A = x,
// B = dy (transposed). With kBGradB the bias gradient Σ_rows dy comes out of
// the same GEMM.
MatmulKey LinearBackwardWeightKey(int64_t M, int64_t N, int64_t K, MatmulEpilogue epilogue,
                                  const void* x, const void* dy, const void* dw,
                                  const void* dbias);

// "m=.. n=.. k=.. ta=.. tb=.. ld=../../.. batch=.. epilogue=.. beta=.. type=.. align=.." for messages.
std::string MatmulKeyToString(const MatmulKey& key);
const char* MatmulEpilogueName(MatmulEpilogue epilogue);

}  // namespace mla::cuda
