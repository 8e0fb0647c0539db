#pragma once
// The decode roofline's model side (docs/benchmarks.md, "Decode roofline"):
// the bytes one decode step must read and the FLOPs it does, per decoded
// token, for a batch of `batch` sequences that each attend to `context`
// cached positions (mean over the timed steps; fractional).
//
//   weights   every weight once per step, shared by the batch: the
//             non-embedding parameters and the LM head [V, C] (tied or not),
//             plus per token its token-embedding row and, with learned
//             positions, its position row
//   KV cache  each sequence reads its own cache: context × the cache values
//             per token (all layers: 2C for MHA, R + P for MLA+RoPE, R for
//             MLA) — per decoded token that is one sequence's cache
//   FLOPs     2 per weight (multiply-add) plus attention over the context:
//             MHA 4·context·C per layer; MLA absorbed 4·context·H·R (scores
//             against and mixing of the latents); MLA naive re-expands K and V
//             from the latents, 2·context·2C·R, then 4·context·C; MLA+RoPE
//             adds 2·context·H·P for the rotary scores
//
// Bytes are the minimum a step must move at the given storage widths; the
// naive MLA mode's expanded K/V scratch is not counted (its FLOPs make it
// compute-bound long before). Pure function of its arguments.
#include <cstdint>

#include "layers/attention.h"
#include "runtime/model_config.h"

namespace mla {

struct DecodeCost {
  double weight_bytes_per_token = 0;  // weights per step / batch + embedding rows
  double kv_bytes_per_token = 0;      // one sequence's cache at `context`
  double bytes_per_token = 0;         // the sum of the two
  double flops_per_token = 0;
};

DecodeCost ComputeDecodeCost(const ModelConfig& config, DecodeMode mode, int batch, double context,
                             int weight_bytes_per_value, int kv_bytes_per_value);

// Tokens per second a decode step can reach: the lower of read bandwidth ÷
// bytes per token (memory-bound) and GEMM peak ÷ FLOPs per token
// (compute-bound).
struct DecodeRoofline {
  double tokens_per_s = 0;
  bool compute_bound = false;
};
DecodeRoofline ComputeDecodeRoofline(const DecodeCost& cost, double read_gb_per_s,
                                     double peak_gflops);

}  // namespace mla
