// mla-data-loader-bench: what the data loader costs per training step.
// Opens a train shard, then times NextBatch for a [G/N, T] rank slice over many
// steps (crossing epochs, so the per-epoch reshuffle is included), the shard
// open + validation, and a Restore to a later epoch.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "glog/logging.h"
#include "runtime/data/data_loader.h"

ABSL_FLAG(std::string, shard, "data/train.bin", "Train token shard to read.");
ABSL_FLAG(int32_t, seq_len, 256, "T: tokens per sequence.");
ABSL_FLAG(int32_t, global_batch, 16, "G: sequences per global batch.");
ABSL_FLAG(int32_t, world_size, 1, "N: ranks; the benchmark plays rank 0.");
ABSL_FLAG(int32_t, steps, 20000, "Batches to time.");
ABSL_FLAG(double, step_seconds, 1.0,
          "Training step time to compare against (about 1 s for a [16 x 256] batch of the "
          "paper's model on CPU).");

int main(int argc, char** argv) {
  mla::SetCommandLineUsage("times the data loader: per-batch cost against a training step");
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point a) {
    return std::chrono::duration<double>(Clock::now() - a).count();
  };

  mla::DataLoaderOptions options{.seq_len = absl::GetFlag(FLAGS_seq_len),
                                 .global_batch = absl::GetFlag(FLAGS_global_batch),
                                 .rank = 0,
                                 .world_size = absl::GetFlag(FLAGS_world_size),
                                 .seed = 1};
  auto start = Clock::now();
  auto loader = mla::DataLoader::Create(absl::GetFlag(FLAGS_shard), options);
  if (!loader.ok()) {
    std::fprintf(stderr, "mla-data-loader-bench: error: %s\n",
                 std::string(loader.status().message()).c_str());
    return 1;
  }
  double open_s = secs(start);
  size_t n = static_cast<size_t>(loader->rows_per_rank()) * options.seq_len;
  std::vector<int32_t> inputs(n), targets(n);
  int steps = absl::GetFlag(FLAGS_steps);
  start = Clock::now();
  int64_t checksum = 0;
  for (int s = 0; s < steps; ++s) {
    loader->NextBatch(inputs.data(), targets.data());
    checksum += inputs[s % n];
  }
  double per_batch_us = secs(start) / steps * 1e6;
  start = Clock::now();
  CHECK(loader->Restore({loader->state().epoch + 3, 0, 1}).ok());
  loader->NextBatch(inputs.data(), targets.data());
  double reshuffle_ms = secs(start) * 1e3;
  double step_s = absl::GetFlag(FLAGS_step_seconds);
  std::printf(
      "shard %s: %llu tokens, %lld windows of T+1=%d, %lld steps/epoch\n"
      "open + validate (mmap, checksum, token range): %.1f ms\n"
      "NextBatch [%d x %d] (rank 0 of %d, G=%d): %.2f us per batch over %d batches "
      "(%.1f epochs; checksum %lld)\n"
      "  = %.4f%% of a %.2f s training step\n"
      "Restore to a new epoch + first batch (permutation rebuild): %.2f ms\n",
      absl::GetFlag(FLAGS_shard).c_str(),
      static_cast<unsigned long long>(loader->shard_header().token_count),
      static_cast<long long>(loader->windows()), options.seq_len + 1,
      static_cast<long long>(loader->steps_per_epoch()), open_s * 1e3, loader->rows_per_rank(),
      options.seq_len, options.world_size, options.global_batch, per_batch_us, steps,
      static_cast<double>(steps) / static_cast<double>(loader->steps_per_epoch()),
      static_cast<long long>(checksum), per_batch_us * 1e-6 / step_s * 100.0, step_s,
      reshuffle_ms);
  return 0;
}
