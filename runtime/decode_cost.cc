#include "runtime/decode_cost.h"

#include <algorithm>

#include "glog/logging.h"

namespace mla {

DecodeCost ComputeDecodeCost(const ModelConfig& c, DecodeMode mode, int batch, double context,
                             int weight_bytes_per_value, int kv_bytes_per_value) {
  CHECK_GT(batch, 0);
  const ModelCost cost = ComputeModelCost(c);
  const double V = c.vocab_size, C = c.d_model, H = c.n_head, R = c.kv_rank, P = c.rope_dim,
               L = c.n_layer;
  const double step_weights = static_cast<double>(cost.non_embedding_parameters) + V * C;
  const double row_weights = C * (c.learned_positions() ? 2 : 1);
  DecodeCost d;
  d.weight_bytes_per_token = (step_weights / batch + row_weights) * weight_bytes_per_value;
  d.kv_bytes_per_token =
      context * static_cast<double>(cost.kv_cache_values_per_token) * kv_bytes_per_value;
  d.bytes_per_token = d.weight_bytes_per_token + d.kv_bytes_per_token;
  double attention = 0;  // per layer
  if (!c.is_mla()) {
    attention = 4 * context * C;
  } else if (mode == DecodeMode::kAbsorbed) {
    attention = 4 * context * H * R;
  } else {
    // The expansion replaces the one-row W_uk/W_uv products counted with the weights.
    attention = 2 * context * 2 * C * R - 2 * 2 * C * R + 4 * context * C;
  }
  if (c.attention == AttentionKind::kMlaRope) attention += 2 * context * H * P;
  d.flops_per_token = 2 * step_weights + L * attention;
  return d;
}

DecodeRoofline ComputeDecodeRoofline(const DecodeCost& cost, double read_gb_per_s,
                                     double peak_gflops) {
  const double memory = read_gb_per_s * 1e9 / cost.bytes_per_token;
  const double compute = peak_gflops * 1e9 / cost.flops_per_token;
  return {std::min(memory, compute), compute < memory};
}

}  // namespace mla
