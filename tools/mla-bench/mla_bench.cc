// mla-bench: training-step throughput of the CPU model for each attention
// kind, with MFU measured against the peak of a large oneDNN sgemm taken in
// the same run (so machine noise affects both alike).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/peak_flops.h"
#include "layers/profiling_kernels.h"
#include "optim/adamw.h"
#include "runtime/gpt_model.h"
#include "runtime/random.h"

ABSL_FLAG(std::string, kinds, "mha,mha_rope,mla,mla_rope", "Attention kinds to measure, comma-separated.");
ABSL_FLAG(int, layers, 6, "Transformer blocks.");
ABSL_FLAG(int, d_model, 256, "Model width C.");
ABSL_FLAG(int, heads, 8, "Attention heads H.");
ABSL_FLAG(int, vocab, 4096, "Vocabulary size V.");
ABSL_FLAG(int, context, 256, "Sequence length T of every training row.");
ABSL_FLAG(int, batch, 16, "Sequences per step B.");
ABSL_FLAG(int, kv_rank, 128, "KV latent rank R for the MLA kinds.");
ABSL_FLAG(int, rope_dim, 16, "Decoupled rotary dims P for mla_rope.");
ABSL_FLAG(int, steps, 5, "Timed training steps per kind.");
ABSL_FLAG(int, warmup, 1, "Untimed steps first (primitive creation, buffer growth).");
ABSL_FLAG(int, peak_size, 2048, "Square size of the sgemm that defines peak GFLOP/s.");
ABSL_FLAG(bool, profile, false, "Also print time per kernel (ms per timed step) for each kind.");

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}


}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(
      "Measures training throughput and MFU of each attention kind on the CPU.\n"
      "Usage: mla-bench [--kinds=mha,mla_rope] [--layers=6 --d_model=256 ...]");
  absl::ParseCommandLine(argc, argv);
  using namespace mla;
  ModelConfig base;
  base.n_layer = absl::GetFlag(FLAGS_layers);
  base.d_model = absl::GetFlag(FLAGS_d_model);
  base.n_head = absl::GetFlag(FLAGS_heads);
  base.vocab_size = absl::GetFlag(FLAGS_vocab);
  base.context_length = absl::GetFlag(FLAGS_context);
  base.kv_rank = absl::GetFlag(FLAGS_kv_rank);
  base.rope_dim = absl::GetFlag(FLAGS_rope_dim);
  const int B = absl::GetFlag(FLAGS_batch), T = base.context_length;
  const int steps = absl::GetFlag(FLAGS_steps);

  const double peak = MeasureSgemmPeakGflops(absl::GetFlag(FLAGS_peak_size), 5);
  std::printf("threads=%d  sgemm peak (%d^3, best of 5) = %.1f GFLOP/s\n", omp_get_max_threads(),
              absl::GetFlag(FLAGS_peak_size), peak);
  std::printf("config: layers=%d d=%d heads=%d vocab=%d context=%d batch=%d kv_rank=%d rope_dim=%d\n",
              base.n_layer, base.d_model, base.n_head, base.vocab_size, T, B, base.kv_rank,
              base.rope_dim);
  std::printf("%-9s %9s %10s %9s %9s %9s %9s %12s %9s %7s\n", "kind", "params", "tokens/s",
              "step ms", "fwd ms", "bwd ms", "opt ms", "GFLOP/token", "GFLOP/s", "MFU");
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_kinds), ',')) {
    auto kind = ParseAttentionKind(name);
    if (!kind.ok()) {
      std::fprintf(stderr, "mla-bench: %s\n", std::string(kind.status().message()).c_str());
      return 2;
    }
    ModelConfig cfg = base;
    cfg.attention = *kind;
    CpuKernels cpu;
    ProfilingKernels profiler(&cpu);
    Kernels* kernels = absl::GetFlag(FLAGS_profile) ? static_cast<Kernels*>(&profiler) : &cpu;
    auto model_or = GptModel::Create(cfg, kernels);
    if (!model_or.ok()) {
      std::fprintf(stderr, "mla-bench: %s\n", std::string(model_or.status().message()).c_str());
      return 2;
    }
    GptModel& model = **model_or;
    model.InitParameters(1);
    const std::vector<DecaySegment> segments = DecaySegments(model.layout());
    auto opt_or = AdamW::Create(AdamWConfig{}, ElementRange{0, model.num_params()}, segments);
    if (!opt_or.ok()) {
      std::fprintf(stderr, "mla-bench: %s\n", std::string(opt_or.status().message()).c_str());
      return 2;
    }
    AdamW& opt = *opt_or;
    std::vector<int32_t> in(static_cast<size_t>(B) * T), tg(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      in[i] = static_cast<int32_t>(UniformAt(2, 1, i) * cfg.vocab_size) % cfg.vocab_size;
      tg[i] = static_cast<int32_t>(UniformAt(2, 2, i) * cfg.vocab_size) % cfg.vocab_size;
    }
    double fwd = 0, bwd = 0, optim = 0;
    for (int s = 0; s < absl::GetFlag(FLAGS_warmup) + steps; ++s) {
      const auto t0 = Clock::now();
      model.ZeroGrads();
      model.Forward(in.data(), tg.data(), B, T, 1.0f / (B * T));
      const auto t1 = Clock::now();
      model.Backward(in.data(), B, T);
      const auto t2 = Clock::now();
      opt.Step(model.params(), model.grads(), 1e-4f);
      const auto t3 = Clock::now();
      if (s + 1 == absl::GetFlag(FLAGS_warmup)) profiler.Reset();
      if (s >= absl::GetFlag(FLAGS_warmup)) {
        fwd += Seconds(t0, t1);
        bwd += Seconds(t1, t2);
        optim += Seconds(t2, t3);
      }
    }
    const double step = (fwd + bwd + optim) / steps;
    const ModelCost cost = ComputeModelCost(cfg);
    const double tokens_per_s = B * T / step;
    const double gflops = cost.train_flops_per_token * tokens_per_s / 1e9;
    std::printf("%-9s %9lld %10.0f %9.1f %9.1f %9.1f %9.1f %12.4f %9.1f %6.1f%%\n",
                std::string(name).c_str(), static_cast<long long>(cost.parameters), tokens_per_s,
                step * 1e3, fwd / steps * 1e3, bwd / steps * 1e3, optim / steps * 1e3,
                cost.train_flops_per_token / 1e9, gflops, 100.0 * gflops / peak);
    if (absl::GetFlag(FLAGS_profile)) {
      for (const auto& [kernel, e] : profiler.entries())
        std::printf("    %-20s %9.1f ms/step %6ld calls/step\n", kernel.c_str(),
                    e.seconds * 1e3 / steps, e.calls / steps);
    }
    std::fflush(stdout);
  }
  return 0;
}
