#pragma once
// Decoder: KV-cached inference for the GPT of docs/model.md (all four attention
// kinds) on the host, and batch generation on top of it.
//
// A Forward call runs a set of segments, each a run of n consecutive tokens of
// one cache slot starting at that slot's current length (a prompt chunk during
// prefill, one token during decode). All rows of a call go through every
// matrix product together (M = rows), then each segment attends to its own
// slot's cache, positions 0 … its row's position. Prefill of prompts of
// different lengths and batched decode are therefore the same code path.
//
// Cache contents (runtime/kv_cache.h): K and V per head for MHA kinds; only the
// latent c_kv [R] (after latent_norm) and, for mla_rope, the shared rotary key
// k_r [P] for MLA kinds. Two MLA decode modes:
//   absorbed (default)  score_h(s) = q_h·(W_uk,h c_s) = (W_uk,hᵀ q_h)·c_s, so each
//       query is mapped once to q̃_h = W_uk,hᵀ q_h ∈ R^R and dotted with the cached
//       latents of all heads in one product; the output is
//       Σ_s p_s W_uv,h c_s = W_uv,h (Σ_s p_s c_s): mix latents, then one product
//       with W_uv,h. The cache is never expanded.
//   naive   expands K = C·W_ukᵀ and V = C·W_uvᵀ for every cached position at
//       every call (full-rank MLA decoding), for comparison.
// The rotary part adds q_r,h·k_r(s) in both modes; scale = 1/sqrt(D (+P)).
//
// Memory: everything (cache, activations, per-thread attention scratch,
// logits) is allocated by Create for max_batch slots × max_len positions and
// max_rows rows per call; Forward allocates nothing.
// Device: host memory only; `kernels` must be a host implementation (CpuKernels)
// and is used for the row-wise products and norms; attention runs here with
// oneDNN sgemm on OpenMP threads (one segment, or one (segment, head), per
// thread). Thread safety: none (one caller). Misuse of Forward (a slot out of
// range, too many rows, overflowing a slot, a token outside the vocabulary) is
// a CHECK; Generate validates requests and reports problems per request.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "layers/kernels.h"
#include "runtime/gpt_model.h"
#include "runtime/kv_cache.h"
#include "runtime/sampling.h"

namespace mla {

enum class DecodeMode { kAbsorbed, kNaive };
absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name);
absl::string_view DecodeModeName(DecodeMode mode);

struct DecoderOptions {
  int max_batch = 8;    // cache slots (sequences decoded together)
  int max_len = 0;      // positions per slot; 0 = the model's context length
  int max_rows = 256;   // rows per Forward call (prefill chunk size)
  DecodeMode mode = DecodeMode::kAbsorbed;  // MLA kinds only
};

// n tokens of slot `slot`, written at positions length(slot) … length(slot)+n−1.
struct DecodeSegment {
  int slot = 0;
  int n = 0;
  const int32_t* tokens = nullptr;
};

class Decoder {
 public:
  // `model` and `kernels` must outlive the decoder; the model's parameters are
  // read at every call (not copied).
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(const GptModel& model, Kernels* kernels,
                                                         const DecoderOptions& options);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs the segments (distinct slots, Σ n ≤ max_rows), appends their keys /
  // latents to the cache and advances the slots' lengths. Logits: with
  // all_logits, one row per input row in segment order; otherwise one row per
  // segment (its last token).
  void Forward(absl::Span<const DecodeSegment> segments, bool all_logits);
  const float* logits() const { return logits_.data(); }

  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  const ModelConfig& config() const { return config_; }
  const DecoderOptions& options() const { return options_; }

 private:
  struct LayerOffsets {
    int64_t ln1_w, ln1_b, ln2_w, ln2_b, w_fc, b_fc, w_proj, b_proj;
    AttentionWeights attn;
  };
  Decoder(const GptModel& model, Kernels* kernels, const DecoderOptions& options);
  void Attention(int layer, int nseg, int64_t rows);
  void AttentionMha(int layer, int nseg);
  void AttentionMlaAbsorbed(int layer, int nseg, int64_t rows);
  void AttentionMlaNaive(int layer, int nseg);
  void ApplyRope(float* x, int64_t ld, int64_t rows, int heads, int dims) const;
  float* ThreadScratch(int which);

  const GptModel& model_;
  Kernels* kernels_;
  DecoderOptions options_;
  ModelConfig config_;
  KvCache cache_;
  std::vector<LayerOffsets> layers_;
  int64_t wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1, head_ = -1;
  float scale_ = 1.0f;
  std::vector<float> rope_cos_, rope_sin_;  // [max_len, rotary_dims/2]

  // Per-call row tables, sized once.
  std::vector<int32_t> tokens_;
  std::vector<int> pos_, seg_slot_, seg_row0_, seg_pos0_, seg_n_;
  // Activations [max_rows, ·].
  std::vector<float> x_, ln_, mean_, rstd_, qkv_, q_, c_q_, c_q_n_, q_rstd_, c_kv_, c_kv_n_,
      kv_rstd_, q_r_, k_r_, q_lat_, o_lat_, y_, fc_, last_, logits_;
  // Per-thread attention scratch: scores, and expanded K|V for naive MLA.
  int threads_ = 1;
  int64_t score_stride_ = 0, kv_stride_ = 0;
  std::vector<float> scores_, expanded_;
};

// Generation --------------------------------------------------------------

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 64;
  SamplingParams sampling;
};

enum class StopReason { kEos, kLength, kContext };
absl::string_view StopReasonName(StopReason reason);

struct GenerationResult {
  absl::Status status;            // not OK: the request was rejected (nothing generated)
  std::vector<int32_t> tokens;    // generated tokens, EOS excluded
  StopReason stop = StopReason::kLength;
  double seconds = 0.0;           // from admission to the last token
};

struct GenerationStats {
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
};

// Generates for every request, at most max_batch at a time: a request enters a
// free slot as soon as one is free (its prompt is prefilled in chunks of up to
// max_rows rows), then all active requests decode one token per step. A
// request stops at `eos_id` (< 0: never), after max_new_tokens tokens, or when
// its slot is full (kContext). Invalid requests (empty prompt, a prompt that
// leaves no room in the context, a token outside the vocabulary, bad sampling
// parameters, max_new_tokens < 1) get an error status; the others are
// unaffected. Results are in request order.
std::vector<GenerationResult> Generate(Decoder& decoder,
                                       absl::Span<const GenerationRequest> requests, int eos_id,
                                       GenerationStats* stats = nullptr);

}  // namespace mla
