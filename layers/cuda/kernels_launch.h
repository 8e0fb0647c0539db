#pragma once
// Launchers of the CUDA kernels behind CudaKernels (compiled by nvcc, in
// layers/cuda/kernels.cu): normalisation rows, column reductions for weight
// and bias gradients, embedding, RoPE, the causal softmax of attention and its
// backward, fused softmax-cross-entropy, and small element-wise helpers. The
// element-wise math is the shared __host__ __device__ code of layers/math/.
//
// Pointers are device memory; every launch is asynchronous on `stream`. Each
// returns the cudaError_t of its launch as an int, so this header needs
// neither CUDA nor Abseil (the nvcc library links no Abseil); the host wrapper
// (layers/cuda/cuda_kernels.cc) turns codes into messages naming the kernel.
// Letters as in layers/kernels.h.
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace mla::cuda::launch {

// y = LN(x)·w + b per row of C; saves mean and 1/std.
int LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                     float* rstd, int64_t M, int64_t C, cudaStream_t stream);
// dx += …  (rows); dw += Σ dy·x̂, db += Σ dy (columns, atomics per row chunk).
int LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                      const float* rstd, float* dx, float* dw, float* db, int64_t M, int64_t C,
                      cudaStream_t stream);
int RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M, int64_t C,
                   cudaStream_t stream);
// dx = … (written), dw += Σ dy·x·r.
int RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                    float* dx, float* dw, int64_t M, int64_t C, cudaStream_t stream);

// out[j] += Σ_rows x[i·ld + j] for j < N (bias gradients).
int ColumnSumAccumulate(const float* x, int64_t M, int64_t N, int64_t ld, float* out,
                        cudaStream_t stream);
// y[i·N + j] += bias[j].
int AddBiasRows(const float* bias, float* y, int64_t M, int64_t N, cudaStream_t stream);

int EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe, float* x, int B,
                     int T, int C, cudaStream_t stream);
int EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte, float* dwpe, int B,
                      int T, int C, cudaStream_t stream);

// cos_sin: [positions, dims/2] cosines then the same count of sines.
int Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims,
         const float* cos_table, const float* sin_table, bool inverse, cudaStream_t stream);

// In place over `rows` rows of T scores; row r is query t = r mod T: softmax
// over columns 0…t, zero above.
int CausalSoftmax(float* scores, int64_t rows, int T, cudaStream_t stream);
// d ← P∘(d − Σ_{s≤t} P·d) for s ≤ t, 0 above (in place over dP).
int CausalSoftmaxBackward(const float* probs, float* d, int64_t rows, int T,
                          cudaStream_t stream);
// out[(b·T+t)·ld + j] = Σ_h parts[((b·H+h)·T+t)·P + j].
int SumHeads(const float* parts, float* out, int64_t ld, int B, int T, int H, int P,
             cudaStream_t stream);

// row_loss[i] = logsumexp(row) − row[target]; with dlogits (may alias
// logits) writes (softmax − onehot)·grad_scale.
int SoftmaxCrossEntropy(const float* logits, const int32_t* targets, float* dlogits,
                        float* row_loss, int64_t M, int64_t V, float grad_scale,
                        cudaStream_t stream);

int Add(const float* x, float* y, int64_t n, cudaStream_t stream);
int Fill(float* x, float value, int64_t n, cudaStream_t stream);
int Scale(float* x, float s, int64_t n, cudaStream_t stream);
// *out += Σ x² (accumulated in double; *out is device memory).
int SumSquaresAccumulate(const float* x, int64_t n, double* out, cudaStream_t stream);

}  // namespace mla::cuda::launch
