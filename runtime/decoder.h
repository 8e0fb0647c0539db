#pragma once
// Decoder: KV-cached inference for the GPT of docs/model.md (all four attention
// kinds) on any Kernels implementation (host or GPU), and batch generation on
// top of it.
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
// Memory: everything (cache, activations, the per-call row tables, logits) is
// a DeviceArray of `kernels`, allocated by Create for max_batch slots ×
// max_len positions and max_rows rows per call; Forward allocates nothing
// (the kernels' own scratch grows on first use of a shape).
// Device: the decoder runs on its kernels' device. Every step (embedding,
// products, norms, RoPE at per-row positions, cache appends, cache attention
// with the absorption products) is a call of the kernel interface
// (layers/kernels.h, "Decoding"); on a GPU implementation only the row tables
// go to the device and the logits come back, once per call. The model must
// live on the same kind of device (Create checks). Sampling stays on the host.
// Thread safety: none (one caller). Misuse of Forward (a slot out of
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
#include "layers/device_array.h"
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
  // read at every call (not copied). Fails when the model's kernels and
  // `kernels` are on different kinds of device (host vs GPU).
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(const GptModel& model, Kernels* kernels,
                                                         const DecoderOptions& options);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs the segments (distinct slots, Σ n ≤ max_rows), appends their keys /
  // latents to the cache and advances the slots' lengths. Logits: with
  // all_logits, one row per input row in segment order; otherwise one row per
  // segment (its last token).
  void Forward(absl::Span<const DecodeSegment> segments, bool all_logits);
  // Logits of the last Forward in host memory ([rows, V] as above).
  const float* logits() const { return host_logits_; }

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
  void Attention(int layer);
  DecodeAttentionViews Views(int layer) const;

  const GptModel& model_;
  Kernels* kernels_;
  DecoderOptions options_;
  ModelConfig config_;
  KvCache cache_;
  std::vector<LayerOffsets> layers_;
  int64_t wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1, head_ = -1;
  float scale_ = 1.0f;

  // Per-call row tables, built on the host and uploaded whole, same layout
  // in both: tokens [max_rows], then slot, row0, pos0 [max_batch + 1 each],
  // pos [max_rows]; batch_ points into both copies.
  std::vector<int32_t> host_table_;
  DeviceArray<int32_t> table_;
  DecodeBatch batch_;
  // Activations [max_rows, ·] in the kernels' memory.
  DeviceArray<float> x_, ln_, mean_, rstd_, qkv_, q_, c_q_, c_q_n_, q_rstd_, c_kv_, c_kv_n_,
      kv_rstd_, q_r_, k_r_, y_, fc_, last_, logits_;
  std::vector<float> logits_on_host_;  // the host copy (GPU kernels only)
  const float* host_logits_ = nullptr;
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
