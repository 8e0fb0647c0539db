#include "layers/cuda/cuda_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "layers/cuda/bf16_cast_launch.h"
#include "layers/cuda/cuda_check.h"
#include "layers/cuda/elementwise_launch.h"
#include "layers/cuda/kernels_launch.h"
#include "layers/math/activation_math.h"

namespace mla::cuda {
namespace {

// A launcher's cudaError_t (as int) must be success; the message names the kernel.
void Launched(int code, const char* kernel) {
  CHECK(code == cudaSuccess) << kernel << " launch: "
                             << cudaGetErrorString(static_cast<cudaError_t>(code));
}

// Alignment every product of a batch keeps: the first pointer's and the
// batch stride's (in bytes).
int BatchAlignment(const void* p, int64_t stride_elements, int element_bytes, int batch) {
  int a = PointerAlignment(p);
  if (batch > 1 && stride_elements != 0) {
    const int s = PointerAlignment(
        reinterpret_cast<const void*>(static_cast<uintptr_t>(stride_elements * element_bytes)));
    a = std::min(a, s);
  }
  return a;
}

// Fused bias epilogues read the bias with vector loads; offer them only
// 16-byte aligned vectors (the parameter buffer places biases anywhere).
constexpr int kEpilogueVectorAlignment = 16;

}  // namespace

absl::StatusOr<std::unique_ptr<CudaKernels>> CudaKernels::Create() {
  return Create(CudaKernelsOptions{});
}

absl::StatusOr<std::unique_ptr<CudaKernels>> CudaKernels::Create(
    const CudaKernelsOptions& options) {
  int count = 0;
  if (absl::Status s = CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount"); !s.ok())
    return s;
  if (count == 0) return absl::FailedPreconditionError("no CUDA device visible");
  cudaStream_t stream = nullptr;
  if (absl::Status s = CudaStatus(cudaStreamCreate(&stream), "cudaStreamCreate"); !s.ok())
    return s;
  absl::StatusOr<std::unique_ptr<LtMatmul>> matmul = LtMatmul::Create(stream);
  if (!matmul.ok()) {
    cudaStreamDestroy(stream);
    return matmul.status();
  }
  std::unique_ptr<CudaKernels> kernels(
      new CudaKernels(stream, std::move(*matmul), options.precision));
  kernels->fuse_gelu_ = options.fuse_gelu_epilogues;
  if (kernels->fuse_gelu_) MLA_RETURN_IF_ERROR(kernels->ProbeGeluEpilogues());
  return kernels;
}

absl::Status CudaKernels::ProbeGeluEpilogues() {
  // Multiples of 1/4 in [-1, 1] with K = 32 (and N = 64 for the backward
  // product): every product and partial sum is exact in fp32, so the fused and unfused GEMMs give identical
  // pre-activations and only the GELU evaluations can differ.
  constexpr int64_t M = 64, N = 64, K = 32;
  auto quarters = [](int64_t n, int64_t mul) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * mul) % 9 - 4) * 0.25f;
    return v;
  };
  const std::vector<float> x = quarters(M * K, 7), w = quarters(N * K, 5), b = quarters(N, 3),
                           dy = quarters(M * N, 11), db = quarters(K, 13);
  std::vector<DeviceBuffer<float>> bufs;
  auto upload = [&](const std::vector<float>& host) -> absl::StatusOr<float*> {
    MLA_ASSIGN_OR_RETURN(DeviceBuffer<float> d,
                         DeviceBuffer<float>::Allocate(static_cast<int64_t>(host.size())));
    MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(d.data(), host.data(), host.size() * sizeof(float),
                                              cudaMemcpyHostToDevice),
                                   "cudaMemcpy (GELU epilogue probe)"));
    bufs.push_back(std::move(d));
    return bufs.back().data();
  };
  MLA_ASSIGN_OR_RETURN(float* dx, upload(x));
  MLA_ASSIGN_OR_RETURN(float* dw, upload(w));
  MLA_ASSIGN_OR_RETURN(float* dbias, upload(b));
  MLA_ASSIGN_OR_RETURN(float* ddy, upload(dy));
  MLA_ASSIGN_OR_RETURN(float* ddb, upload(db));
  MLA_ASSIGN_OR_RETURN(float* pre, upload(std::vector<float>(M * N)));
  MLA_ASSIGN_OR_RETURN(float* h, upload(std::vector<float>(M * N)));
  MLA_ASSIGN_OR_RETURN(float* h_ref, upload(std::vector<float>(M * N)));
  MLA_ASSIGN_OR_RETURN(float* pre_k, upload(quarters(M * K, 17)));
  MLA_ASSIGN_OR_RETURN(float* dpre, upload(std::vector<float>(M * K)));
  MLA_ASSIGN_OR_RETURN(float* dpre_ref, upload(std::vector<float>(M * K)));
  // In the kernels' own precision: quarters are exact in bf16 too, and the
  // weights (no parameter buffer registered yet) are cast per call.
  LinearGeluForward(dx, dw, dbias, pre, h, M, N, K);
  GeluForward(pre, h_ref, M * N);
  // dpre[M,K] = (dy[M,N]·w[N,K]) ∘ GELU'(pre_k): fused, then the plain GEMM and the kernel.
  LinearBackwardDGelu(ddy, dw, pre_k, dpre, ddb, M, N, K);
  LinearBackward(nullptr, dw, ddy, dpre_ref, nullptr, nullptr, M, N, K, false);
  GeluBackward(pre_k, dpre_ref, dpre_ref, M * K);
  MLA_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream_), "GELU epilogue probe"));
  MLA_RETURN_IF_ERROR(gemm_status_);
  auto worst = [&](const float* a, const float* r, int64_t n) -> absl::StatusOr<double> {
    std::vector<float> ha(static_cast<size_t>(n)), hr(static_cast<size_t>(n));
    MLA_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(ha.data(), a, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy"));
    MLA_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(hr.data(), r, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy"));
    double largest = 0, diff = 0;
    for (int64_t i = 0; i < n; ++i) {
      largest = std::max(largest, std::fabs(static_cast<double>(hr[i])));
      diff = std::max(diff, std::fabs(static_cast<double>(ha[i]) - hr[i]));
      if (!std::isfinite(ha[i])) diff = INFINITY;
    }
    constexpr double kEightUlp = 16.0 / (1 << 24);  // 8 ulp = 16 unit roundoffs
    return diff / (kEightUlp * std::max(largest, 1e-30));
  };
  MLA_ASSIGN_OR_RETURN(double forward, worst(h, h_ref, M * N));
  MLA_ASSIGN_OR_RETURN(double backward, worst(dpre, dpre_ref, M * K));
  gelu_epilogue_error_ = std::max(forward, backward);
  if (gelu_epilogue_error_ > 1.0) {
    fuse_gelu_ = false;
    LOG(WARNING) << "cuBLASLt's GELU epilogues differ from the shared GELU by "
                 << gelu_epilogue_error_ << " x 8 ulp (forward " << forward << ", backward "
                 << backward << "): the MLP uses the unfused GEMM + GELU kernels";
  }
  return absl::OkStatus();
}

CudaKernels::~CudaKernels() {
  const cudaError_t e = cudaStreamSynchronize(stream_);
  LOG_IF(ERROR, e != cudaSuccess) << "cudaStreamSynchronize: " << cudaGetErrorString(e);
  matmul_.reset();
  cudaStreamDestroy(stream_);
}

void CudaKernels::Synchronize() { MLA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaKernels::AllocateBytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  CHECK(e == cudaSuccess) << "cudaMalloc(" << bytes << " bytes): " << cudaGetErrorString(e);
  MLA_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  return p;
}

void CudaKernels::FreeBytes(void* p) {
  // cudaFree waits for the device, so queued kernels finish with the buffer first.
  if (p != nullptr) MLA_CUDA_CHECK(cudaFree(p));
}

void CudaKernels::CopyToDevice(void* dst, const void* src, size_t bytes) {
  // From pageable memory the call returns once `src` has been staged.
  if (bytes > 0)
    MLA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}

void CudaKernels::CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  MLA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  Synchronize();
}

void CudaKernels::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0)
    MLA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

absl::Status CudaKernels::SetParameterBuffer(const float* params, int64_t n) {
  if (n < 0 || params == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat("SetParameterBuffer: needs a buffer and n >= 0 (n=", n, ")"));
  if (precision_ == Precision::kFp32) return absl::OkStatus();  // GEMMs read the fp32 weights
  // Queued GEMMs may still read the old shadow: replace it only after them.
  Synchronize();
  params_ = nullptr;
  param_count_ = 0;
  param_shadow_ = DeviceBuffer<uint16_t>();
  absl::StatusOr<DeviceBuffer<uint16_t>> shadow = DeviceBuffer<uint16_t>::Allocate(n);
  if (!shadow.ok()) return shadow.status();
  param_shadow_ = std::move(*shadow);
  params_ = params;
  param_count_ = n;
  RefreshLowPrecisionWeights();
  return absl::OkStatus();
}

void CudaKernels::RefreshLowPrecisionWeights() {
  if (precision_ == Precision::kFp32) return;
  CHECK(params_ != nullptr) << "RefreshLowPrecisionWeights before SetParameterBuffer";
  Launched(launch::CastToBf16(params_, param_shadow_.data(), param_count_, stream_),
           "CastToBf16Kernel (parameter shadow)");
}

CudaKernels::Operand CudaKernels::GemmInput(const float* x, int64_t ld, int64_t rows,
                                            int64_t cols, Slot slot) {
  if (precision_ == Precision::kFp32) return Operand{x, ld};
  uint16_t* y = bf16_scratch_[slot].Reserve(std::max<int64_t>(rows * cols, 1));
  if (ld == cols)
    Launched(launch::CastToBf16(x, y, rows * cols, stream_), "CastToBf16Kernel");
  else
    Launched(launch::CastRowsToBf16(x, ld, rows, cols, y, stream_), "CastRowsToBf16Kernel");
  return Operand{y, cols};
}

const void* CudaKernels::GemmWeight(const float* w, int64_t n) {
  if (precision_ == Precision::kFp32) return w;
  // Compare addresses as integers: w need not point into the buffer.
  const auto begin = reinterpret_cast<uintptr_t>(params_);
  const auto end = begin + static_cast<uintptr_t>(param_count_) * sizeof(float);
  const auto first = reinterpret_cast<uintptr_t>(w);
  const auto last = first + static_cast<uintptr_t>(n) * sizeof(float);
  if (params_ != nullptr && first >= begin && last <= end)
    return param_shadow_.data() + (first - begin) / sizeof(float);
  CHECK(params_ == nullptr || last <= begin || first >= end)
      << "a weight of " << n << " floats straddles the end of the registered parameter buffer";
  return GemmInput(w, n, 1, n, kSlotWeight).data;
}

void CudaKernels::RowGemm(MatmulType type, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                          float alpha, const void* A, int64_t lda, int64_t stride_a,
                          const void* B, int64_t ldb, int64_t stride_b, bool accumulate,
                          float* C, int64_t ldc, int64_t stride_c, int batch) {
  const int bytes = MatmulTypeBytes(type);
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ with the
  // same transpose flags: swap the operands.
  MatmulKey key = GemmShapeKey(N, M, K, ldb, lda, ldc, accumulate);
  key.trans_a = tb;
  key.trans_b = ta;
  key.batch = batch;
  key.stride_a = stride_b;
  key.stride_b = stride_a;
  key.stride_c = stride_c;
  key.type = type;
  key.align_a = BatchAlignment(B, stride_b, bytes, batch);
  key.align_b = BatchAlignment(A, stride_a, bytes, batch);
  key.align_c = BatchAlignment(C, stride_c, sizeof(float), batch);
  MatmulArgs args;
  args.a = B;
  args.b = A;
  args.c = C;
  args.alpha = alpha;
  Gemm(key, args);
}

bool CudaKernels::Gemm(const MatmulKey& key, const MatmulArgs& args) {
  absl::StatusOr<bool> ran = matmul_->Run(key, args);
  if (ran.ok()) return *ran;
  if (gemm_status_.ok()) gemm_status_ = ran.status();
  LOG_FIRST_N(ERROR, 8) << ran.status().message();
  // Poison D (column-major m×n, leading dimension ldc, per batch) with NaN
  // so no plausible number flows on from the unwritten product.
  for (int b = 0; b < key.batch; ++b) {
    float* d = static_cast<float*>(args.c) + b * key.stride_c;
    MLA_CUDA_CHECK(cudaMemset2DAsync(d, key.ldc * sizeof(float), 0xFF, key.m * sizeof(float),
                                     key.n, stream_));
  }
  return true;
}

void CudaKernels::LinearForward(const float* x, const float* w, const float* bias, float* y,
                                int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                                bool accumulate) {
  if (M == 0 || N == 0) return;  // y is empty
  const void* wa = GemmWeight(w, N * K);
  const void* xa = GemmInput(x, K, M, K, kSlotX).data;
  RunLinearForward(xa, wa, bias, y, M, N, K, epilogue, accumulate);
}

void CudaKernels::RunLinearForward(const void* x, const void* w, const float* bias, float* y,
                                   int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                                   bool accumulate) {
  CHECK(!(accumulate && epilogue == Epilogue::kBiasGelu)) << "GELU does not accumulate";
  MatmulEpilogue fused = MatmulEpilogue::kDefault;
  if (epilogue == Epilogue::kBias) fused = MatmulEpilogue::kBias;
  if (epilogue == Epilogue::kBiasGelu) fused = MatmulEpilogue::kGeluBias;
  MatmulArgs args;
  args.a = w;
  args.b = x;
  args.c = y;
  args.bias = const_cast<float*>(bias);
  if (fused != MatmulEpilogue::kDefault && K > 0 &&
      PointerAlignment(bias) >= kEpilogueVectorAlignment) {
    MatmulKey key = LinearForwardKey(M, N, K, fused, accumulate, x, w, bias, y);
    key.type = gemm_type();
    if (Gemm(key, args)) return;
  }
  // Unfused: plain GEMM (or, with K == 0, the empty product's zeros), then
  // bias and GELU kernels.
  args.bias = nullptr;
  if (K == 0) {
    if (!accumulate) Fill(y, 0.0f, M * N);
  } else {
    MatmulKey key =
        LinearForwardKey(M, N, K, MatmulEpilogue::kDefault, accumulate, x, w, nullptr, y);
    key.type = gemm_type();
    Gemm(key, args);
  }
  if (epilogue != Epilogue::kNone)
    Launched(launch::AddBiasRows(bias, y, M, N, stream_), "AddBiasRowsKernel");
  if (epilogue == Epilogue::kBiasGelu)
    Launched(launch::GeluForward(y, y, M * N, stream_), "GeluForwardKernel");
}

void CudaKernels::RunLinearBackwardData(const void* dy, const void* w, float* dx, int64_t M,
                                        int64_t N, int64_t K, bool accumulate) {
  MatmulArgs args;
  args.a = w;
  args.b = dy;
  args.c = dx;
  MatmulKey key = LinearBackwardDataKey(M, N, K, accumulate, dy, w, dx);
  key.type = gemm_type();
  Gemm(key, args);
}

void CudaKernels::LinearBackward(const float* x, const float* w, const float* dy, float* dx,
                                 float* dw, float* db, int64_t M, int64_t N, int64_t K,
                                 bool accumulate_dx) {
  // Empty products: the fused bias gradients below write scratch that is then
  // added to db, so a product cuBLASLt skips must not reach them.
  if (M == 0) return;  // dx has no rows; dw and db gain nothing
  if (N == 0) {        // dx = (dx +) 0·w; dw and db are empty
    if (dx != nullptr && !accumulate_dx) Fill(dx, 0.0f, M * K);
    return;
  }
  if (K == 0) {  // dx and dw are empty; db += Σ_rows dy
    if (db != nullptr)
      Launched(launch::ColumnSumAccumulate(dy, M, N, N, db, stream_), "ColumnReduceKernel");
    return;
  }
  // dy is an operand of both products: cast once.
  const void* dya = (dx != nullptr || dw != nullptr) ? GemmInput(dy, N, M, N, kSlotDy).data
                                                     : nullptr;
  if (dx != nullptr) RunLinearBackwardData(dya, GemmWeight(w, N * K), dx, M, N, K, accumulate_dx);
  bool db_done = false;
  if (dw != nullptr) {
    const void* xa = GemmInput(x, K, M, K, kSlotX).data;
    MatmulArgs args;
    args.a = xa;
    args.b = dya;
    args.c = dw;
    // BGRADB sums the GEMM's B operand: in bf16 that is the rounded dy, so the
    // bias gradient is then taken from the fp32 dy by the column-sum kernel.
    if (db != nullptr && precision_ == Precision::kFp32) {
      // BGRADB writes (not adds) the bias gradient: into scratch, added below.
      float* scratch = bias_grad_.Reserve(N);
      args.bias = scratch;
      if (Gemm(LinearBackwardWeightKey(M, N, K, MatmulEpilogue::kBGradB, xa, dya, dw, scratch),
               args)) {
        Launched(launch::Add(scratch, db, N, stream_), "AddKernel");
        db_done = true;
      }
      args.bias = nullptr;
    }
    if (!db_done) {
      MatmulKey key =
          LinearBackwardWeightKey(M, N, K, MatmulEpilogue::kDefault, xa, dya, dw, nullptr);
      key.type = gemm_type();
      Gemm(key, args);
    }
  }
  if (db != nullptr && !db_done)
    Launched(launch::ColumnSumAccumulate(dy, M, N, N, db, stream_), "ColumnReduceKernel");
}

void CudaKernels::LinearGeluForward(const float* x, const float* w, const float* bias, float* pre,
                                    float* h, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;  // pre and h are empty
  if (!fuse_gelu_) return Kernels::LinearGeluForward(x, w, bias, pre, h, M, N, K);
  const void* wa = GemmWeight(w, N * K);
  const void* xa = GemmInput(x, K, M, K, kSlotX).data;
  MatmulArgs args;
  args.a = wa;
  args.b = xa;
  args.c = h;
  args.bias = const_cast<float*>(bias);
  args.aux = pre;
  args.ld_aux = N;
  // cuBLASLt wants the aux leading dimension divisible by 8.
  if (N % 8 == 0 && K > 0 && PointerAlignment(bias) >= kEpilogueVectorAlignment &&
      PointerAlignment(pre) >= kEpilogueVectorAlignment) {
    MatmulKey key =
        LinearForwardKey(M, N, K, MatmulEpilogue::kGeluAuxBias, false, xa, wa, bias, h);
    key.type = gemm_type();
    key.align_aux = PointerAlignment(pre);
    if (Gemm(key, args)) return;
  }
  RunLinearForward(xa, wa, bias, pre, M, N, K, Epilogue::kBias, false);
  GeluForward(pre, h, M * N);
}

void CudaKernels::LinearBackwardDGelu(const float* dy, const float* w, const float* pre,
                                      float* dpre, float* db, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || K == 0) return;  // dpre is empty; db gains nothing
  if (!fuse_gelu_) return Kernels::LinearBackwardDGelu(dy, w, pre, dpre, db, M, N, K);
  if (N == 0) {                  // dpre = 0 ∘ GELU'(pre) = 0; db += 0
    Fill(dpre, 0.0f, M * K);
    return;
  }
  const void* wa = GemmWeight(w, N * K);
  const void* dya = GemmInput(dy, N, M, N, kSlotDy).data;
  // DGELU_BGRAD writes the bias gradient (a sum over the fp32 output, in
  // either precision): into scratch, then added to db.
  float* scratch = bias_grad_.Reserve(K);
  MatmulArgs args;
  args.a = wa;
  args.b = dya;
  args.c = dpre;
  args.bias = scratch;
  args.aux = const_cast<float*>(pre);
  args.ld_aux = K;
  if (K % 8 == 0 && PointerAlignment(pre) >= kEpilogueVectorAlignment) {
    MatmulKey key = LinearBackwardDataKey(M, N, K, false, dya, wa, dpre);
    key.type = gemm_type();
    key.epilogue = MatmulEpilogue::kDGeluBGrad;
    key.align_bias = PointerAlignment(scratch);
    key.align_aux = PointerAlignment(pre);
    if (Gemm(key, args)) {
      Launched(launch::Add(scratch, db, K, stream_), "AddKernel");
      return;
    }
  }
  RunLinearBackwardData(dya, wa, dpre, M, N, K, false);
  GeluBackward(pre, dpre, dpre, M * K);
  Launched(launch::ColumnSumAccumulate(dpre, M, K, K, db, stream_), "ColumnReduceKernel");
}

void CudaKernels::LayerNormForward(const float* x, const float* w, const float* b, float* y,
                                   float* mean, float* rstd, int64_t M, int64_t C) {
  Launched(launch::LayerNormForward(x, w, b, y, mean, rstd, M, C, stream_),
           "LayerNormForwardKernel");
}

void CudaKernels::LayerNormBackward(const float* dy, const float* x, const float* w,
                                    const float* mean, const float* rstd, float* dx, float* dw,
                                    float* db, int64_t M, int64_t C) {
  Launched(launch::LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db, M, C, stream_),
           "LayerNormBackward kernels");
}

void CudaKernels::RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                                 int64_t C) {
  Launched(launch::RmsNormForward(x, w, y, rstd, M, C, stream_), "RmsNormForwardKernel");
}

void CudaKernels::RmsNormBackward(const float* dy, const float* x, const float* w,
                                  const float* rstd, float* dx, float* dw, int64_t M, int64_t C) {
  Launched(launch::RmsNormBackward(dy, x, w, rstd, dx, dw, M, C, stream_),
           "RmsNormBackward kernels");
}

void CudaKernels::GeluForward(const float* u, float* h, int64_t n) {
  Launched(launch::GeluForward(u, h, n, stream_), "GeluForwardKernel");
}

void CudaKernels::GeluBackward(const float* u, const float* dh, float* du, int64_t n) {
  Launched(launch::GeluBackward(u, dh, du, n, stream_), "GeluBackwardKernel");
}

void CudaKernels::EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe,
                                   float* x, int B, int T, int C) {
  Launched(launch::EmbeddingForward(tokens, wte, wpe, x, B, T, C, stream_),
           "EmbeddingForwardKernel");
}

void CudaKernels::EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte,
                                    float* dwpe, int B, int T, int C) {
  Launched(launch::EmbeddingBackward(tokens, dx, dwte, dwpe, B, T, C, stream_),
           "EmbeddingBackwardKernel");
}

const CudaKernels::RopeTable& CudaKernels::GetRopeTable(int dims, float theta, int positions) {
  RopeTable& table = rope_tables_[{dims, theta}];
  if (table.positions >= positions) return table;
  // The CPU path's table: angles in double, rounded to float once.
  const int half = dims / 2;
  std::vector<float> c(static_cast<size_t>(positions) * half), s(c.size());
  for (int p = 0; p < positions; ++p) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * math::RopeFrequency(i, dims, theta);
      c[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
      s[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
    }
  }
  // The old tables may still be read by queued kernels: replace only after them.
  Synchronize();
  table.cos = DeviceBuffer<float>();
  table.sin = DeviceBuffer<float>();
  table.cos.Reserve(static_cast<int64_t>(c.size()));
  table.sin.Reserve(static_cast<int64_t>(s.size()));
  MLA_CUDA_CHECK(cudaMemcpy(table.cos.data(), c.data(), c.size() * sizeof(float),
                            cudaMemcpyHostToDevice));
  MLA_CUDA_CHECK(cudaMemcpy(table.sin.data(), s.data(), s.size() * sizeof(float),
                            cudaMemcpyHostToDevice));
  table.positions = positions;
  return table;
}

void CudaKernels::Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims,
                       float theta, bool inverse) {
  CHECK_EQ(dims % 2, 0);
  const RopeTable& table = GetRopeTable(dims, theta, pos0 + T);
  Launched(launch::Rope(x, ld, rows, T, pos0, heads, dims, table.cos.data(), table.sin.data(),
                        inverse, stream_),
           "RopeKernel");
}

CudaKernels::AttentionOperands CudaKernels::AttentionInputs(const AttentionViews& in) {
  const int64_t M = static_cast<int64_t>(in.B) * in.T;
  const int64_t HD = static_cast<int64_t>(in.H) * in.D, HP = static_cast<int64_t>(in.H) * in.P;
  AttentionOperands ops;
  ops.q = GemmInput(in.q, in.ld_q, M, HD, kSlotQ);
  ops.k = GemmInput(in.k, in.ld_k, M, HD, kSlotK);
  ops.v = GemmInput(in.v, in.ld_v, M, HD, kSlotV);
  if (in.q_rope != nullptr) {
    ops.q_rope = GemmInput(in.q_rope, in.ld_q_rope, M, HP, kSlotQRope);
    ops.k_rope = GemmInput(in.k_rope, in.ld_k_rope, M, in.P, kSlotKRope);
  }
  return ops;
}

void CudaKernels::AttentionForward(const AttentionViews& in, float* y, int64_t ld_y,
                                   float* probs) {
  const int B = in.B, T = in.T, H = in.H, D = in.D, P = in.P;
  const int64_t TT = static_cast<int64_t>(T) * T;
  const MatmulType t = gemm_type();
  const AttentionOperands ops = AttentionInputs(in);
  for (int b = 0; b < B; ++b) {
    const int64_t row0 = static_cast<int64_t>(b) * T;
    float* S = probs + static_cast<int64_t>(b) * H * TT;
    // S_h = scale·Q_h·K_hᵀ for every head h (batch stride D along the row).
    RowGemm(t, false, true, T, T, D, in.scale, ops.q.At(row0 * ops.q.ld, t), ops.q.ld, D,
            ops.k.At(row0 * ops.k.ld, t), ops.k.ld, D, false, S, T, TT, H);
  }
  if (in.q_rope != nullptr) {
    // S_h += scale·Q_r,h·K_rᵀ: K_r is shared by the heads, so batch over the
    // sequences (stride T rows) and loop over heads.
    for (int h = 0; h < H; ++h) {
      RowGemm(t, false, true, T, T, P, in.scale, ops.q_rope.At(static_cast<int64_t>(h) * P, t),
              ops.q_rope.ld, T * ops.q_rope.ld, ops.k_rope.data, ops.k_rope.ld,
              T * ops.k_rope.ld, true, probs + h * TT, T, H * TT, B);
    }
  }
  Launched(launch::CausalSoftmax(probs, static_cast<int64_t>(B) * H * T, T, stream_),
           "CausalSoftmaxKernel");
  // P is an operand of Y = P·V: rounded to bf16 in bf16 mode (probs stay fp32).
  const Operand p = GemmInput(probs, TT, static_cast<int64_t>(B) * H, TT, kSlotScores);
  for (int b = 0; b < B; ++b) {
    const int64_t row0 = static_cast<int64_t>(b) * T;
    RowGemm(t, false, false, T, D, T, 1.0f, p.At(static_cast<int64_t>(b) * H * TT, t), T, TT,
            ops.v.At(row0 * ops.v.ld, t), ops.v.ld, D, false, y + row0 * ld_y, ld_y, D, H);
  }
}

void CudaKernels::AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                                    int64_t ld_dy, const AttentionGrads& g) {
  const int B = in.B, T = in.T, H = in.H, D = in.D, P = in.P;
  const int64_t TT = static_cast<int64_t>(T) * T;
  const int64_t M = static_cast<int64_t>(B) * T;
  const MatmulType t = gemm_type();
  const AttentionOperands ops = AttentionInputs(in);
  const Operand dya = GemmInput(dy, ld_dy, M, static_cast<int64_t>(H) * D, kSlotDy);
  const Operand pa = GemmInput(probs, TT, static_cast<int64_t>(B) * H, TT, kSlotScores);
  float* dS = dscores_.Reserve(static_cast<int64_t>(B) * H * TT);
  float* dkr_parts =
      in.q_rope != nullptr ? dkr_parts_.Reserve(static_cast<int64_t>(B) * H * T * P) : nullptr;
  for (int b = 0; b < B; ++b) {
    const int64_t row0 = static_cast<int64_t>(b) * T;
    const void* Pb = pa.At(static_cast<int64_t>(b) * H * TT, t);
    float* dSb = dS + static_cast<int64_t>(b) * H * TT;
    const void* dYb = dya.At(row0 * dya.ld, t);
    // dP = dY·Vᵀ;  dV = Pᵀ·dY
    RowGemm(t, false, true, T, T, D, 1.0f, dYb, dya.ld, D, ops.v.At(row0 * ops.v.ld, t), ops.v.ld,
            D, false, dSb, T, TT, H);
    RowGemm(t, true, false, T, D, T, 1.0f, Pb, T, TT, dYb, dya.ld, D, false, g.dv + row0 * g.ld_dv,
            g.ld_dv, D, H);
  }
  Launched(launch::CausalSoftmaxBackward(probs, dS, static_cast<int64_t>(B) * H * T, T, stream_),
           "CausalSoftmaxBackwardKernel");
  // dS is an operand of the four products below. In bf16 mode its copy
  // reuses P's scratch: the stream orders the cast after the dV products.
  const Operand ds = GemmInput(dS, TT, static_cast<int64_t>(B) * H, TT, kSlotScores);
  for (int b = 0; b < B; ++b) {
    const int64_t row0 = static_cast<int64_t>(b) * T;
    const void* dSb = ds.At(static_cast<int64_t>(b) * H * TT, t);
    // dQ = scale·dS·K;  dK = scale·dSᵀ·Q
    RowGemm(t, false, false, T, D, T, in.scale, dSb, T, TT, ops.k.At(row0 * ops.k.ld, t), ops.k.ld,
            D, false, g.dq + row0 * g.ld_dq, g.ld_dq, D, H);
    RowGemm(t, true, false, T, D, T, in.scale, dSb, T, TT, ops.q.At(row0 * ops.q.ld, t), ops.q.ld,
            D, false, g.dk + row0 * g.ld_dk, g.ld_dk, D, H);
    if (in.q_rope != nullptr) {
      // Per-head parts of dK_r = scale·dS_hᵀ·Q_r,h, summed over heads below.
      RowGemm(t, true, false, T, P, T, in.scale, dSb, T, TT, ops.q_rope.At(row0 * ops.q_rope.ld, t),
              ops.q_rope.ld, P, false, dkr_parts + static_cast<int64_t>(b) * H * T * P, P,
              static_cast<int64_t>(T) * P, H);
    }
  }
  if (in.q_rope != nullptr) {
    // dQ_r,h = scale·dS_h·K_r: K_r is shared by the heads, so batch over the
    // sequences per head.
    for (int h = 0; h < H; ++h) {
      RowGemm(t, false, false, T, P, T, in.scale, ds.At(h * TT, t), T, H * TT, ops.k_rope.data,
              ops.k_rope.ld, T * ops.k_rope.ld, false, g.dq_rope + static_cast<int64_t>(h) * P,
              g.ld_dq_rope, T * g.ld_dq_rope, B);
    }
    Launched(launch::SumHeads(dkr_parts, g.dk_rope, g.ld_dk_rope, B, T, H, P, stream_),
             "SumHeadsKernel");
  }
}

double CudaKernels::SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits,
                                        int64_t M, int64_t V, float grad_scale) {
  float* rows = row_loss_.Reserve(M);
  Launched(launch::SoftmaxCrossEntropy(logits, targets, dlogits, rows, M, V, grad_scale, stream_),
           "SoftmaxCrossEntropyKernel");
  std::vector<float> host(static_cast<size_t>(M));
  MLA_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), rows, M * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  Synchronize();
  double total = 0.0;
  for (float r : host) total += static_cast<double>(r);
  return total;
}

void CudaKernels::Add(const float* x, float* y, int64_t n) {
  Launched(launch::Add(x, y, n, stream_), "AddKernel");
}

void CudaKernels::Fill(float* x, float value, int64_t n) {
  Launched(launch::Fill(x, value, n, stream_), "FillKernel");
}

void CudaKernels::Copy(const float* x, float* y, int64_t n) {
  if (n == 0) return;
  MLA_CUDA_CHECK(cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}

void CudaKernels::Scale(float* x, float s, int64_t n) {
  Launched(launch::Scale(x, s, n, stream_), "ScaleKernel");
}

double CudaKernels::SumOfSquares(const float* x, int64_t n) {
  double* out = sum_squares_.Reserve(1);
  MLA_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream_));
  Launched(launch::SumSquaresAccumulate(x, n, out, stream_), "SumSquaresKernel");
  double host = 0.0;
  MLA_CUDA_CHECK(cudaMemcpyAsync(&host, out, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  Synchronize();
  return host;
}

void CudaKernels::AdamWStep(float* params, float* m, float* v, const float* grads,
                            const uint8_t* decay, int64_t n, const AdamWStepScalars& scalars) {
  Launched(launch::AdamWStep(params, m, v, grads, decay, n, scalars, stream_), "AdamWKernel");
}

}  // namespace mla::cuda
