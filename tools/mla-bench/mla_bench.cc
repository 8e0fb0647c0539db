// mla-bench: training-step throughput for each attention kind on the device
// of --device (runtime/training_device.h: the kernels, AdamW and its moments
// as mla-train runs them). MFU is measured against the device's peak taken in
// the same run (so machine noise affects both alike): on the CPU the best of
// a ladder of square sgemms and of the model's own GEMM shapes, on a GPU the
// device's GEMM peak in the run's precision.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "comm/local_communicator.h"
#include "layers/profiling_kernels.h"
#include "runtime/gpt_model.h"
#include "runtime/model_flags.h"
#include "runtime/random.h"
#include "runtime/training_device.h"

// The model comes from the shared model flags (runtime/model_flags.h); the
// spellings mla-bench took before they were shared stay as aliases.
ABSL_FLAG(std::string, kinds, "",
          "Attention kinds to measure, comma-separated (empty: --attention when given, else "
          "mha,mha_rope,mla,mla_rope).");
ABSL_FLAG(std::optional<int>, layers, std::nullopt, "Alias of --n_layer.");
ABSL_FLAG(std::optional<int>, heads, std::nullopt, "Alias of --n_head.");
ABSL_FLAG(std::optional<int>, vocab, std::nullopt, "Alias of --vocab_size.");
ABSL_FLAG(std::optional<int>, context, std::nullopt, "Alias of --context_length.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu (oneDNN + OpenMP; MFU against the sgemm peak measured in the same run) or cuda "
          "(the first visible GPU; no MFU column).");
ABSL_FLAG(std::string, precision, "fp32", "GEMM precision: fp32, or bf16 with --device=cuda.");
ABSL_FLAG(int, batch, 16, "Sequences per step B.");
ABSL_FLAG(int, steps, 5, "Timed training steps per kind.");
ABSL_FLAG(int, warmup, 1, "Untimed steps first (primitive creation, buffer growth).");
ABSL_FLAG(bool, profile, false, "Also print time per kernel (ms per timed step) for each kind.");

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The model flags with the aliases applied; an alias and its flag together
// are an error.
absl::StatusOr<ModelConfig> BenchConfig() {
  ModelConfig c = ModelConfigFromFlags();
  const struct {
    const char* alias;
    std::optional<int> value;
    const char* name;
    int* field;
  } aliases[] = {{"layers", absl::GetFlag(FLAGS_layers), "n_layer", &c.n_layer},
                 {"heads", absl::GetFlag(FLAGS_heads), "n_head", &c.n_head},
                 {"vocab", absl::GetFlag(FLAGS_vocab), "vocab_size", &c.vocab_size},
                 {"context", absl::GetFlag(FLAGS_context), "context_length", &c.context_length}};
  for (const auto& a : aliases) {
    if (!a.value) continue;
    if (ModelFlagGiven(a.name))
      return absl::InvalidArgumentError(
          absl::StrCat("--", a.alias, " is an alias of --", a.name, "; give one of them"));
    *a.field = *a.value;
  }
  return c;
}

absl::StatusOr<std::vector<AttentionKind>> BenchKinds(const ModelConfig& c) {
  std::string kinds = absl::GetFlag(FLAGS_kinds);
  if (kinds.empty())
    kinds = ModelFlagGiven("attention") ? std::string(AttentionKindName(c.attention))
                                        : "mha,mha_rope,mla,mla_rope";
  std::vector<AttentionKind> out;
  for (absl::string_view name : absl::StrSplit(kinds, ',')) {
    MLA_ASSIGN_OR_RETURN(AttentionKind kind, ParseAttentionKind(name));
    out.push_back(kind);
  }
  return out;
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::ParseCommandLineWithUsage(
      argc, argv,
      "Measures training throughput (and MFU on the CPU) of each attention kind.\n"
      "Usage: mla-bench [--kinds=mha,mla_rope] [--n_layer=6 --d_model=256 ...] [--device=cuda]");
  using namespace mla;
  const auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "mla-bench: %s\n", std::string(s.message()).c_str());
    return 2;
  };
  absl::StatusOr<ModelConfig> base = BenchConfig();
  if (!base.ok()) return fail(base.status());
  absl::StatusOr<std::vector<AttentionKind>> kinds = BenchKinds(*base);
  if (!kinds.ok()) return fail(kinds.status());
  absl::StatusOr<Precision> precision = ParsePrecision(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) return fail(precision.status());
  // One process: the training device's collectives run over a local communicator.
  LocalCommunicator comm;
  absl::StatusOr<std::unique_ptr<TrainingDevice>> device =
      CreateTrainingDevice(absl::GetFlag(FLAGS_device), *precision, &comm);
  if (!device.ok()) return fail(device.status());
  const bool cpu = (*device)->kernels().is_host();
  const int B = absl::GetFlag(FLAGS_batch), T = base->context_length;
  const int steps = absl::GetFlag(FLAGS_steps);

  // One peak for every kind: the maximum of each kind's (training_device.h).
  double peak = 0;
  for (AttentionKind kind : *kinds) {
    ModelConfig cfg = *base;
    cfg.attention = kind;
    if (absl::Status s = ValidateModelConfig(cfg); !s.ok()) return fail(s);
    peak = std::max(peak, (*device)->MeasurePeakGflops(cfg, int64_t{B} * T));
  }
  if (cpu)
    std::printf("threads=%d  sgemm peak (square ladder and the model's GEMM shapes) = %.1f "
                "GFLOP/s\n", omp_get_max_threads(), peak);
  else
    std::printf("device=%s  GEMM peak in --precision=%s = %.1f GFLOP/s\n",
                std::string((*device)->name()).c_str(), absl::GetFlag(FLAGS_precision).c_str(), peak);
  std::printf("config: n_layer=%d d_model=%d n_head=%d vocab_size=%d context_length=%d batch=%d "
              "kv_rank=%d rope_dim=%d\n",
              base->n_layer, base->d_model, base->n_head, base->vocab_size, T, B, base->kv_rank,
              base->rope_dim);
  std::printf("%-9s %9s %10s %9s %9s %9s %9s %12s %9s %7s\n", "kind", "params", "tokens/s",
              "step ms", "fwd ms", "bwd ms", "opt ms", "GFLOP/token", "GFLOP/s", "MFU");
  ProfilingKernels profiler(&(*device)->kernels());
  Kernels* kernels = absl::GetFlag(FLAGS_profile) ? &profiler : &(*device)->kernels();
  for (AttentionKind kind : *kinds) {
    ModelConfig cfg = *base;
    cfg.attention = kind;
    if (absl::Status s = ValidateModelConfig(cfg); !s.ok()) return fail(s);
    profiler.Reset();
    auto model_or = GptModel::Create(cfg, kernels);
    if (!model_or.ok()) return fail(model_or.status());
    GptModel& model = **model_or;
    model.InitParameters(1);
    if (absl::Status s = (*device)->CreateOptimizer(AdamWConfig{}, ElementRange{0, model.num_params()},
                                                    DecaySegments(model.layout()));
        !s.ok())
      return fail(s);
    if (absl::Status s = (*device)->ParametersChanged(model.params(), model.num_params()); !s.ok())
      return fail(s);
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
      kernels->Synchronize();
      const auto t1 = Clock::now();
      model.Backward(in.data(), B, T);
      kernels->Synchronize();
      const auto t2 = Clock::now();
      (*device)->OptimizerStep(model.params(), model.grads(), 1e-4f);
      if (absl::Status st = (*device)->ParametersChanged(model.params(), model.num_params()); !st.ok())
        return fail(st);
      kernels->Synchronize();
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
                std::string(AttentionKindName(kind)).c_str(), static_cast<long long>(cost.parameters),
                tokens_per_s, step * 1e3, fwd / steps * 1e3, bwd / steps * 1e3, optim / steps * 1e3,
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
