// mla-calc: prints the parameter count, training FLOPs per token and KV-cache
// bytes per token of a model config, next to MHA of the same size, and with
// --micro_batch the GPU memory plan of a training run (runtime/memory_plan.h,
// the same plan `mla-train --device=cuda` prints and checks at start).
#include <cstdio>
#include <string>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "runtime/memory_plan.h"
#include "runtime/model_config.h"
#include "runtime/model_flags.h"

// The model comes from the shared model flags (runtime/model_flags.h); these
// are the memory plan's.
ABSL_FLAG(int, micro_batch, 0, "With a value > 0, also print the GPU training memory plan per rank for this many sequences per micro-batch.");
ABSL_FLAG(int, seq_len, 0, "Memory plan: tokens per sequence (0: --context_length).");
ABSL_FLAG(std::string, precision, "fp32", "Memory plan: fp32 or bf16 (matmul operands; master weights stay fp32).");
ABSL_FLAG(int, zero, 0, "Memory plan: ZeRO stage (1 shards the optimizer state over --ranks).");
ABSL_FLAG(int, ranks, 1, "Memory plan: data-parallel ranks.");

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(
      "Prints parameters, training FLOPs/token and KV-cache bytes/token for a model config;\n"
      "with --micro_batch also the GPU memory plan of training it (per rank).\n"
      "  mla-calc --attention=mla_rope --d_model=512 --kv_rank=256 --rope_dim=32\n"
      "  mla-calc --micro_batch=16 --precision=fp32 --zero=1 --ranks=8");
  absl::ParseCommandLine(argc, argv);
  const mla::ModelConfig c = mla::ModelConfigFromFlags();
  if (absl::Status s = mla::ValidateModelConfig(c); !s.ok()) {
    std::fprintf(stderr, "mla-calc: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  mla::ModelConfig mha = c;
  mha.attention = mla::AttentionKind::kMha;
  mha.q_rank = 0;
  mha.latent_norm = false;
  const mla::ModelCost cost = mla::ComputeModelCost(c), base = mla::ComputeModelCost(mha);
  std::printf("%s", mla::ModelConfigToString(c).c_str());
  std::printf("parameters                  %lld (non-embedding %lld)\n",
              static_cast<long long>(cost.parameters),
              static_cast<long long>(cost.non_embedding_parameters));
  std::printf("training FLOPs per token    %.4g (6 per weight + attention at T=%d)\n",
              cost.train_flops_per_token, c.context_length);
  std::printf("KV cache per token          %lld values per layer, %lld bytes fp32, %lld bytes bf16 (all layers)\n",
              static_cast<long long>(cost.kv_cache_values_per_token_per_layer),
              static_cast<long long>(cost.kv_cache_bytes_per_token(4)),
              static_cast<long long>(cost.kv_cache_bytes_per_token(2)));
  std::printf("KV cache vs MHA             %.1f%% of MHA's %lld bytes fp32 (%.1f%% reduction)\n",
              100.0 * cost.kv_cache_values_per_token / base.kv_cache_values_per_token,
              static_cast<long long>(base.kv_cache_bytes_per_token(4)),
              100.0 - 100.0 * cost.kv_cache_values_per_token / base.kv_cache_values_per_token);
  if (absl::GetFlag(FLAGS_micro_batch) > 0) {
    auto precision = mla::ParsePrecision(absl::GetFlag(FLAGS_precision));
    if (!precision.ok()) {
      std::fprintf(stderr, "mla-calc: error: %s\n", std::string(precision.status().message()).c_str());
      return 1;
    }
    mla::MemoryPlanOptions mo;
    mo.micro_batch = absl::GetFlag(FLAGS_micro_batch);
    mo.seq_len = absl::GetFlag(FLAGS_seq_len);
    mo.precision = *precision;
    mo.zero_stage = absl::GetFlag(FLAGS_zero);
    mo.world_size = absl::GetFlag(FLAGS_ranks);
    auto plan = mla::ComputeMemoryPlan(c, mo);
    if (!plan.ok()) {
      std::fprintf(stderr, "mla-calc: error: %s\n", std::string(plan.status().message()).c_str());
      return 1;
    }
    std::printf("GPU training memory per rank (micro-batch %d x %d tokens, %s, ZeRO-%d over %d ranks):\n%s",
                mo.micro_batch, mo.seq_len == 0 ? c.context_length : mo.seq_len,
                absl::GetFlag(FLAGS_precision).c_str(), mo.zero_stage, mo.world_size,
                mla::FormatMemoryPlan(*plan).c_str());
  }
  return 0;
}
