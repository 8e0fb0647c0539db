#pragma once
// The one kernel interface every layer is written against, in three parts:
// DeviceMemory (allocation and copies), TrainingOps (forward and backward of
// every layer) and DecodeOps (cached decoding); Kernels is all three. An
// implementation (layers/cpu: oneDNN + OpenMP; layers/cuda: cuBLASLt + .cu
// kernels) runs each call on its device; pointers are that device's memory. Calls are issued from
// one thread and complete in order (the CPU implementation returns when done).
//
// Letters: M rows (= B·T tokens), N output features, K input features,
// B batch, T time, H heads, D head dim, P rotary dims, V vocab, C channels.
// Matrices are row-major; Linear weights are [N, K] (PyTorch layout).
#include <cstddef>
#include <cstdint>

namespace mla {

enum class Epilogue { kNone, kBias, kBiasGelu };

// Causal attention over per-head query/key/value views laid out as rows of
// tokens ([B·T, ld]); head h of a row owns columns h·D … h·D+D−1 (h·P for the
// rotary parts). Used by every attention kind:
//   score(t, s) = scale · (q_h(t)·k_h(s) + q_r,h(t)·k_r(s)),  s ≤ t
// The rotary terms are present when q_rope/k_rope are non-null (mla_rope,
// where one k_r row is shared by all heads).
struct AttentionViews {
  int B = 0, T = 0, H = 0, D = 0, P = 0;
  float scale = 1.0f;
  const float* q = nullptr;       int64_t ld_q = 0;
  const float* k = nullptr;       int64_t ld_k = 0;
  const float* v = nullptr;       int64_t ld_v = 0;
  const float* q_rope = nullptr;  int64_t ld_q_rope = 0;  // [B·T, H·P] or null
  const float* k_rope = nullptr;  int64_t ld_k_rope = 0;  // [B·T, P] or null
};

// Gradients of the attention inputs, same layouts as AttentionViews (written,
// not accumulated). dk_rope is summed over heads.
struct AttentionGrads {
  float* dq = nullptr;       int64_t ld_dq = 0;
  float* dk = nullptr;       int64_t ld_dk = 0;
  float* dv = nullptr;       int64_t ld_dv = 0;
  float* dq_rope = nullptr;  int64_t ld_dq_rope = 0;
  float* dk_rope = nullptr;  int64_t ld_dk_rope = 0;
};

// ---- Decoding (runtime/decoder.h). One call covers S segments: segment s
// is rows row0[s] … row0[s+1]−1 of the activations (row0[S] = M), the
// tokens of cache slot slot[s] at positions pos0[s] … pos0[s]+n_s−1, and
// pos[r] is row r's position. A cache part is one block [slots, L, width]
// (L = cache_len positions per slot, runtime/kv_cache.h); the row at
// position p attends to its slot's positions 0 … p. Letters: S segments,
// L cache positions per slot, R latent rank.
struct DecodeTable {
  const int32_t* slot = nullptr;  // [S]
  const int32_t* row0 = nullptr;  // [S + 1]
  const int32_t* pos0 = nullptr;  // [S]
  const int32_t* pos = nullptr;   // [M]
};
struct DecodeBatch {
  int S = 0;
  int64_t M = 0;
  int max_len = 0;     // max over segments of pos0 + n: the longest attended prefix
  DecodeTable host;    // in host memory (loops and launch shapes on the host)
  DecodeTable device;  // the same values in the implementation's memory
};
// Cache attention operands. MHA kinds read q, k, v; MLA kinds q (and, for
// mla_rope, q_rope and k_rope), the latents and W_uk / W_uv (Linear layout
// [H·D, R]; head h owns rows h·D … h·D+D−1; adjacent: w_uv = w_uk + H·D·R).
struct DecodeAttentionViews {
  int H = 0, D = 0, P = 0, R = 0;
  float scale = 1.0f;
  int cache_len = 0;                            // L
  const float* q = nullptr;  int64_t ld_q = 0;  // [M, ld_q], head h at columns h·D
  const float* q_rope = nullptr;                // [M, H·P] rotated, or null
  const float* k = nullptr;                     // [slots, L, H·D] keys (MHA)
  const float* v = nullptr;                     // [slots, L, H·D] values (MHA)
  const float* latent = nullptr;                // [slots, L, R] latents c_kv (MLA)
  const float* k_rope = nullptr;                // [slots, L, P] shared rotary keys, or null
  const float* w_uk = nullptr;
  const float* w_uv = nullptr;
};

// The memory of an implementation's device (layers/device_array.h wraps
// these in an owning type). Every buffer a caller passes to the ops below
// comes from here. Host implementations return ordinary host memory.
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;

  // True when pointers from AllocateBytes are host memory (the CPU path):
  // callers may then read and write them directly and skip the copies.
  virtual bool is_host() const = 0;
  // A zero-filled buffer of `bytes` (≥ 64-byte aligned); nullptr for 0 bytes.
  // Failure to allocate is fatal with a message naming the size.
  virtual void* AllocateBytes(size_t bytes) = 0;
  // Frees a buffer of AllocateBytes once the calls issued before have used it.
  virtual void FreeBytes(void* p) = 0;
  // Host → device: `src` may be reused as soon as the call returns; the copy
  // is ordered before later calls.
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  // Device → host: returns when `dst` holds the data (waits for earlier calls).
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Device → device, ordered with the other calls.
  virtual void CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;
  // Returns when every call issued so far has completed.
  virtual void Synchronize() = 0;
};

// The ops of a training step (forward and backward of every layer).
class TrainingOps {
 public:
  virtual ~TrainingOps() = default;

  // y[M,N] (= or +=) x[M,K]·wᵀ + bias, optionally GELU(·) (training keeps
  // the pre-activation, so it calls kBias then GeluForward). `accumulate` adds
  // the result to y (residual connections); it is not combined with GELU.
  virtual void LinearForward(const float* x, const float* w, const float* bias, float* y,
                             int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                             bool accumulate) = 0;
  // dx[M,K] (= or += when accumulate_dx) dy·w;  dw[N,K] += dyᵀ·x;  db[N] += Σ_rows dy.
  // dx, dw, db may each be null (not needed); x is unused when dw is null.
  virtual void LinearBackward(const float* x, const float* w, const float* dy, float* dx,
                              float* dw, float* db, int64_t M, int64_t N, int64_t K,
                              bool accumulate_dx) = 0;

  // The MLP's GELU around its up-projection, for implementations that fuse it
  // into the GEMM epilogue (fuses_gelu_epilogues() true; CUDA: GELU_AUX_BIAS
  // and DGELU_BGRAD). The defaults compose the calls above, so results match
  // the unfused sequence exactly.
  //   pre[M,N] = x·wᵀ + bias;  h = GELU(pre).
  virtual void LinearGeluForward(const float* x, const float* w, const float* bias, float* pre,
                                 float* h, int64_t M, int64_t N, int64_t K) {
    LinearForward(x, w, bias, pre, M, N, K, Epilogue::kBias, false);
    GeluForward(pre, h, M * N);
  }
  //   dpre[M,K] = (dy[M,N]·w[N,K]) ∘ GELU'(pre);  db[K] += Σ_rows dpre.
  virtual void LinearBackwardDGelu(const float* dy, const float* w, const float* pre, float* dpre,
                                   float* db, int64_t M, int64_t N, int64_t K) {
    LinearBackward(nullptr, w, dy, dpre, nullptr, nullptr, M, N, K, false);
    GeluBackward(pre, dpre, dpre, M * K);
    LinearBackward(nullptr, nullptr, dpre, nullptr, nullptr, db, M, K, 0, false);
  }
  // True when the two calls above are faster than the composed sequence, so
  // TransformerBlock's backward takes the fused order (the down-projection's
  // input gradient and the up-projection's bias gradient move into
  // LinearBackwardDGelu). False keeps the unfused order, whose operand
  // choices the CPU path's bit-exact results depend on.
  virtual bool fuses_gelu_epilogues() const { return false; }

  // LayerNorm over rows of C; saves mean and 1/std per row for backward.
  virtual void LayerNormForward(const float* x, const float* w, const float* b, float* y,
                                float* mean, float* rstd, int64_t M, int64_t C) = 0;
  // dx += …, dw += …, db += ….
  virtual void LayerNormBackward(const float* dy, const float* x, const float* w,
                                 const float* mean, const float* rstd, float* dx, float* dw,
                                 float* db, int64_t M, int64_t C) = 0;
  // RMSNorm over rows of C (no bias); saves 1/rms per row.
  virtual void RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                              int64_t C) = 0;
  // dx = … (written), dw += ….
  virtual void RmsNormBackward(const float* dy, const float* x, const float* w,
                               const float* rstd, float* dx, float* dw, int64_t M, int64_t C) = 0;

  virtual void GeluForward(const float* u, float* h, int64_t n) = 0;
  // du = dh · GELU'(u).
  virtual void GeluBackward(const float* u, const float* dh, float* du, int64_t n) = 0;

  // x[b,t] = wte[tok[b,t]] (+ wpe[t] when wpe is non-null).
  virtual void EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe,
                                float* x, int B, int T, int C) = 0;
  // dwte[tok] += dx; dwpe[t] += Σ_b dx (when dwpe is non-null).
  virtual void EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte,
                                 float* dwpe, int B, int T, int C) = 0;

  // Rotates `heads` groups of `dims` columns of each row in place; a row's
  // position is (row mod T) + pos0. inverse=true applies the transpose (backward).
  virtual void Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims,
                    float theta, bool inverse) = 0;

  // Forward causal attention; y[B·T, H·D] (ld_y); probs[B,H,T,T] keeps the
  // softmax for backward. Only entries s ≤ t are meaningful: an implementation
  // may leave entries far right of the diagonal unwritten (causal skipping).
  virtual void AttentionForward(const AttentionViews& in, float* y, int64_t ld_y,
                                float* probs) = 0;
  virtual void AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                                 int64_t ld_dy, const AttentionGrads& grads) = 0;

  // Mean cross-entropy over M rows of V logits. Returns the sum of the row
  // losses (in double). When dlogits is non-null writes
  // (softmax − onehot)·grad_scale into it (may alias logits).
  virtual double SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits,
                                     int64_t M, int64_t V, float grad_scale) = 0;

  // y += x.
  virtual void Add(const float* x, float* y, int64_t n) = 0;
  virtual void Fill(float* x, float value, int64_t n) = 0;
  virtual void Copy(const float* x, float* y, int64_t n) = 0;
};

// The ops of cached decoding (runtime/decoder.h; structs above). All
// pointers, including the device table of `b` and `tokens`, are this
// implementation's memory.
class DecodeOps {
 public:
  virtual ~DecodeOps() = default;

  // x[r] = wte[tokens[r]] (+ wpe[pos[r]] when wpe is non-null), rows of C.
  virtual void DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe,
                               float* x, int C, const DecodeBatch& b) = 0;
  // Rotates `heads` groups of `dims` columns of row r by position pos[r].
  virtual void DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                          const DecodeBatch& b) = 0;
  // cache[(slot[s]·L + pos[r])·width + j] = src[r·ld_src + j] for j < width
  // and every row r of every segment s.
  virtual void DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache,
                                 int cache_len, const DecodeBatch& b) = 0;
  // MHA kinds: y[r, h·D + j] (ld_y) = Σ_{s ≤ pos[r]} p_h(r, s)·v_h(s)_j with
  // p_h(r, ·) = softmax_s(scale·q_h(r)·k_h(s)) over the slot's cache.
  virtual void DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                               int64_t ld_y) = 0;
  // MLA kinds over the latent cache, scores
  //   scale·(q_h(r)·(W_uk,h c_s) + q_r,h(r)·k_r(s)),  y_h(r) = Σ_s p_h(r, s)·W_uv,h c_s.
  // absorbed: q̃_h = W_uk,hᵀ q_h ∈ R^R once per row and head, scores q̃_h·c_s,
  //   output W_uv,h (Σ_s p_s c_s); the cache is never expanded.
  // naive: K = C·W_ukᵀ, V = C·W_uvᵀ for every cached position at every call.
  virtual void DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b,
                                     bool absorbed, float* y, int64_t ld_y) = 0;
};

// The one kernel interface every layer is written against: an
// implementation provides all three parts on one device. Decorators derive
// from ForwardingKernels (layers/forwarding_kernels.h) and override only
// what they change.
class Kernels : public DeviceMemory, public TrainingOps, public DecodeOps {};

}  // namespace mla
