#pragma once
// Decoder: KV-cached inference for the GPT of docs/model.md (all four attention
// kinds) on any Kernels implementation (host or GPU), and batch generation on
// top of it. The decoder schedules; the model computes: GptModel's cached
// Forward runs the same blocks and attention layers as training
// (layers/attention.h describes the cache and the two MLA decode modes).
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
// k_r [P] for MLA kinds. MLA kinds decode absorbed (default: W_uk and W_uv
// folded into query and output, the cache never expanded) or naive (K and V
// expanded from the latents at every call), DecoderOptions::mode.
//
// Memory: the cache and the per-call row tables are DeviceArrays of the
// model's kernels, allocated by Create for max_batch slots × max_len
// positions and max_rows rows per call; Create also sizes the model's cached
// activations (GptModel::ReserveCached). Forward allocates nothing (the
// kernels' own scratch grows on first use of a shape).
// Device: the decoder runs on the model's kernels. On a GPU implementation
// only the row tables go to the device and the logits come back, once per
// call. Sampling stays on the host.
// Thread safety: none (one caller; the decoder uses the model's activation
// buffers, so no training step may run between its calls). Misuse of Forward
// (a slot out of range, too many rows, overflowing a slot, a token outside
// the vocabulary) is a CHECK; Generate validates requests and reports
// problems per request.
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
  // `model` must outlive the decoder; its parameters are read at every call
  // (not copied). `kernels` must be the model's kernels (Create fails
  // otherwise, naming the devices when they differ in kind).
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(GptModel& model, Kernels* kernels,
                                                         const DecoderOptions& options);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs the segments (distinct slots, Σ n ≤ max_rows), appends their keys /
  // latents to the cache and advances the slots' lengths. Logits: with
  // all_logits, one row per input row in segment order; otherwise one row per
  // segment (its last token).
  void Forward(absl::Span<const DecodeSegment> segments, bool all_logits);
  // Logits of the last Forward in host memory ([rows, V] as above); the
  // model's own buffer on host kernels, so valid until the model's next
  // cached call.
  const float* logits() const {
    return model_.kernels()->is_host() ? model_.cached_logits() : logits_on_host_.data();
  }

  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  const ModelConfig& config() const { return config_; }
  const DecoderOptions& options() const { return options_; }

 private:
  Decoder(GptModel& model, const DecoderOptions& options);

  GptModel& model_;
  DecoderOptions options_;
  ModelConfig config_;
  KvCache cache_;

  // Per-call row tables, built on the host and uploaded whole, same layout
  // in both: tokens [max_rows], then slot, row0, pos0 [max_batch + 1 each],
  // pos [max_rows]; batch_ points into both copies.
  std::vector<int32_t> host_table_;
  DeviceArray<int32_t> table_;
  DecodeBatch batch_;
  std::vector<float> logits_on_host_;  // the host copy (GPU kernels only)
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
