#include "layers/cuda/lt_matmul.h"

#include "absl/strings/str_cat.h"
#include "layers/cuda/cuda_check.h"

namespace mla::cuda {
namespace {

cublasLtEpilogue_t ToLt(MatmulEpilogue e) {
  switch (e) {
    case MatmulEpilogue::kDefault: return CUBLASLT_EPILOGUE_DEFAULT;
    case MatmulEpilogue::kBias: return CUBLASLT_EPILOGUE_BIAS;
    case MatmulEpilogue::kGeluBias: return CUBLASLT_EPILOGUE_GELU_BIAS;
    case MatmulEpilogue::kGeluAuxBias: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case MatmulEpilogue::kDGeluBGrad: return CUBLASLT_EPILOGUE_DGELU_BGRAD;
    case MatmulEpilogue::kBGradB: return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

cudaDataType_t ToCuda(MatmulType t) { return t == MatmulType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

bool UsesAux(MatmulEpilogue e) {
  return e == MatmulEpilogue::kGeluAuxBias || e == MatmulEpilogue::kDGeluBGrad;
}

cublasLtMatrixLayout_t MakeLayout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                                  int batch, int64_t stride) {
  cublasLtMatrixLayout_t layout = nullptr;
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, rows, cols, ld));
  if (batch > 1) {
    const int32_t count = batch;
    MLA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                      &count, sizeof(count)));
    MLA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return layout;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LtMatmul>> LtMatmul::Create(cudaStream_t stream) {
  cublasLtHandle_t handle = nullptr;
  if (absl::Status s = CublasStatus(cublasLtCreate(&handle), "cublasLtCreate"); !s.ok()) return s;
  absl::StatusOr<DeviceBuffer<uint8_t>> workspace = DeviceBuffer<uint8_t>::Allocate(kWorkspaceBytes);
  if (!workspace.ok()) {
    cublasLtDestroy(handle);
    return workspace.status();
  }
  return std::unique_ptr<LtMatmul>(new LtMatmul(handle, stream, std::move(*workspace)));
}

LtMatmul::~LtMatmul() {
  plans_.Clear();
  cublasLtDestroy(handle_);
}

void LtMatmul::Destroy(Plan& plan) {
  if (plan.a != nullptr) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.b != nullptr) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.c != nullptr) cublasLtMatrixLayoutDestroy(plan.c);
  if (plan.desc != nullptr) cublasLtMatmulDescDestroy(plan.desc);
}

void LtMatmul::SetPointers(const Plan& plan, const MatmulKey& key, const MatmulArgs& args) {
  if (key.epilogue != MatmulEpilogue::kDefault) {
    MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias, sizeof(args.bias)));
  }
  if (UsesAux(key.epilogue)) {
    MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &args.aux, sizeof(args.aux)));
    MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &args.ld_aux, sizeof(args.ld_aux)));
  }
}

LtMatmul::Plan& LtMatmul::GetPlan(const MatmulKey& key, const MatmulArgs& args) {
  if (Plan* cached = plans_.Find(key)) return *cached;
  // Decoding evicts by design; a training step that needs more plans than
  // the cache holds would re-plan every step, so say when eviction starts.
  LOG_IF(WARNING, plans_.size() == plans_.capacity() && plans_.evictions() == 0)
      << "cuBLASLt plan cache full (" << plans_.capacity()
      << " plans): evicting the least recently used from now on";
  return plans_.Insert(key, MakePlan(key, args));
}

LtMatmul::Plan LtMatmul::MakePlan(const MatmulKey& key, const MatmulArgs& args) {
  Plan plan;
  const cudaDataType_t type = ToCuda(key.type);  // of A and B
  MLA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = key.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = key.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  MLA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  MLA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cublasLtEpilogue_t epilogue = ToLt(key.epilogue);
  MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                  &epilogue, sizeof(epilogue)));
  // The heuristic reads the bias/aux pointers to learn their alignment.
  SetPointers(plan, key, args);
  // Stored shapes: op(A) is m×k, so A is k×m when transposed.
  plan.a = key.trans_a ? MakeLayout(type, key.k, key.m, key.lda, key.batch, key.stride_a)
                       : MakeLayout(type, key.m, key.k, key.lda, key.batch, key.stride_a);
  plan.b = key.trans_b ? MakeLayout(type, key.n, key.k, key.ldb, key.batch, key.stride_b)
                       : MakeLayout(type, key.k, key.n, key.ldb, key.batch, key.stride_b);
  // C and D stay fp32 whatever A and B are: accumulation and outputs in fp32.
  plan.c = MakeLayout(CUDA_R_32F, key.m, key.n, key.ldc, key.batch, key.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace = kWorkspaceBytes;
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  const uint32_t align_a = key.align_a, align_b = key.align_b, align_c = key.align_c;
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  plan.supported = st == CUBLAS_STATUS_SUCCESS && found > 0;
  if (plan.supported) plan.algo = result.algo;
  plan.heuristic_status = st;
  return plan;
}

absl::StatusOr<bool> LtMatmul::Run(const MatmulKey& key, const MatmulArgs& args) {
  if (key.m == 0 || key.n == 0) return true;
  Plan& plan = GetPlan(key, args);
  if (!plan.supported && key.epilogue != MatmulEpilogue::kDefault) return false;
  if (!plan.supported)
    return absl::FailedPreconditionError(absl::StrCat(
        "cuBLASLt has no algorithm (cublasLtMatmulAlgoGetHeuristic: ",
        cublasLtGetStatusString(plan.heuristic_status), ") for ", MatmulKeyToString(key)));
  SetPointers(plan, key, args);
  const float beta = key.accumulate ? 1.0f : 0.0f;
  const cublasStatus_t st =
      cublasLtMatmul(handle_, plan.desc, &args.alpha, args.a, plan.a, args.b, plan.b, &beta,
                     args.c, plan.c, args.c, plan.c, &plan.algo, workspace_.data(),
                     kWorkspaceBytes, stream_);
  CHECK(st == CUBLAS_STATUS_SUCCESS)
      << "cublasLtMatmul: " << cublasLtGetStatusString(st) << " for " << MatmulKeyToString(key);
  return true;
}

}  // namespace mla::cuda
