// mla-bench-comm: measures what the communication and optimizer layers cost on
// this machine: blocking all-reduce bandwidth for float buffers from
// --min_mb to --max_mb (doubling), the bucketed non-blocking all-reduce the
// training loop uses (GradientReducer), and the AdamW step throughput for
// --adamw_params parameters. Run under mpirun for the collectives, e.g.
//   mpirun -np 2 build/optim/mla-bench-comm
// Prints one table on rank 0. Timings are the slowest rank's, medians over
// --iters repetitions after --warmup untimed ones.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "optim/adamw.h"
#include "optim/zero.h"

ABSL_FLAG(int, min_mb, 1, "Smallest all-reduce buffer, in MiB (float32 elements).");
ABSL_FLAG(int, max_mb, 128, "Largest all-reduce buffer, in MiB; sizes double from --min_mb.");
ABSL_FLAG(int, iters, 10, "Timed repetitions per measurement (the median is reported).");
ABSL_FLAG(int, warmup, 2, "Untimed repetitions before each measurement.");
ABSL_FLAG(std::vector<std::string>, sizes_mib, {},
          "Explicit all-reduce sizes in MiB (comma-separated, fractions allowed, e.g. the "
          "gradient buckets of a model) instead of the doubling series --min_mb..--max_mb.");
ABSL_FLAG(double, gradient_mib, 0,
          "Size of the GradientReducer measurement in MiB (0: --max_mb), e.g. a model's "
          "whole fp32 gradient buffer.");
ABSL_FLAG(double, bucket_mb, 25.0, "Bucket size of the GradientReducer measurement, in MiB.");
ABSL_FLAG(int64_t, adamw_params, 30000000,
          "Parameters in the AdamW step measurement (0 skips it).");

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;

// Median over ranks' slowest: each repetition's time is all-reduced (max)
// so the figure is what the job as a whole waits for.
template <typename Fn>
absl::StatusOr<double> TimeMedian(Communicator& comm, int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) MLA_RETURN_IF_ERROR(fn());
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    MLA_RETURN_IF_ERROR(comm.Barrier());
    const auto t0 = Clock::now();
    MLA_RETURN_IF_ERROR(fn());
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    MLA_RETURN_IF_ERROR(comm.AllReduce(absl::MakeSpan(&dt, 1), ReduceOp::kMax));
    times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

absl::Status Run() {
  std::unique_ptr<MpiSession> session;
  if (LaunchedUnderMpi()) {
    MLA_ASSIGN_OR_RETURN(session, MpiSession::Init(nullptr, nullptr));
  }
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateCommunicator());
  const int n = comm->size();
  const bool print = comm->rank() == 0;
  const int warmup = absl::GetFlag(FLAGS_warmup), iters = absl::GetFlag(FLAGS_iters);
  if (iters < 1 || warmup < 0 || absl::GetFlag(FLAGS_min_mb) < 1 ||
      absl::GetFlag(FLAGS_max_mb) < absl::GetFlag(FLAGS_min_mb))
    return absl::InvalidArgumentError(
        "need --iters >= 1, --warmup >= 0 and 1 <= --min_mb <= --max_mb");
  std::vector<double> sizes_mib;
  for (const std::string& s : absl::GetFlag(FLAGS_sizes_mib)) {
    double mib = 0;
    if (!absl::SimpleAtod(s, &mib) || !(mib > 0))
      return absl::InvalidArgumentError(
          absl::StrCat("--sizes_mib: '", s, "' is not a positive number of MiB"));
    sizes_mib.push_back(mib);
  }
  if (sizes_mib.empty())
    for (int mb = absl::GetFlag(FLAGS_min_mb); mb <= absl::GetFlag(FLAGS_max_mb); mb *= 2)
      sizes_mib.push_back(mb);
  const double gradient_mib = absl::GetFlag(FLAGS_gradient_mib) > 0
                                  ? absl::GetFlag(FLAGS_gradient_mib)
                                  : absl::GetFlag(FLAGS_max_mb);
  auto floats_of = [](double mib) {
    return std::max<int64_t>(1, static_cast<int64_t>(mib * 1024 * 1024 / 4));
  };
  const double ring_factor = 2.0 * (n - 1) / n;
  if (print) {
    std::printf("ranks %d, OpenMP threads per rank from OMP_NUM_THREADS\n", n);
    std::printf("%-28s %10s %12s %14s %14s\n", "operation", "MiB", "time ms", "algbw GB/s",
                "busbw GB/s");
  }

  std::vector<float> buffer;
  for (double mb : sizes_mib) {
    const int64_t floats = floats_of(mb);
    buffer.assign(static_cast<size_t>(floats), 1.0f);
    auto span = absl::MakeSpan(buffer);
    MLA_ASSIGN_OR_RETURN(double t, TimeMedian(*comm, warmup, iters, [&] {
                           return comm->AllReduce(span, ReduceOp::kSum);
                         }));
    const double bytes = static_cast<double>(floats) * 4;
    if (print)
      std::printf("%-28s %10.2f %12.3f %14.2f %14.2f\n", "AllReduce(sum)", mb, t * 1e3,
                  bytes / t / 1e9, bytes / t / 1e9 * ring_factor);
  }

  {
    const double mb = gradient_mib;
    const int64_t floats = floats_of(mb);
    buffer.assign(static_cast<size_t>(floats), 1.0f);
    GradientReducer reducer(comm.get(), absl::MakeSpan(buffer), GradientSync::kAllReduce,
                            absl::GetFlag(FLAGS_bucket_mb));
    // Marks the buffer ready in 1 MiB tensors from the end, as backward does.
    const int64_t tensor = 1 << 18;
    MLA_ASSIGN_OR_RETURN(double t, TimeMedian(*comm, warmup, iters, [&]() -> absl::Status {
                           for (int64_t end = floats; end > 0; end -= tensor)
                             MLA_RETURN_IF_ERROR(
                                 reducer.MarkReady(std::max<int64_t>(0, end - tensor), end));
                           return reducer.Finish();
                         }));
    const double bytes = static_cast<double>(floats) * 4;
    if (print)
      std::printf("%-28s %10.2f %12.3f %14.2f %14.2f\n", "GradientReducer(avg,bucket)", mb,
                  t * 1e3, bytes / t / 1e9, bytes / t / 1e9 * ring_factor);
  }

  const int64_t params = absl::GetFlag(FLAGS_adamw_params);
  if (params > 0) {
    std::vector<float> p(static_cast<size_t>(params)), g(static_cast<size_t>(params));
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (int64_t i = 0; i < params; ++i) {
      p[i] = normal(rng);
      g[i] = normal(rng);
    }
    // A decayed matrix followed by a non-decayed vector, like a weight and its bias.
    const int64_t split = params - params / 64;
    const std::vector<DecaySegment> segments = {{0, split, true}, {split, params - split, false}};
    MLA_ASSIGN_OR_RETURN(AdamW adamw,
                         AdamW::Create(AdamWConfig{}, ElementRange{0, params}, segments));
    MLA_ASSIGN_OR_RETURN(double t, TimeMedian(*comm, warmup, iters, [&] {
                           adamw.Step(p.data(), g.data(), 1e-3f);
                           return absl::OkStatus();
                         }));
    // Reads p, g, m, v and writes p, m, v: 28 bytes per parameter.
    const double bytes = 28.0 * static_cast<double>(params);
    if (print)
      std::printf("%-28s %10.1f %12.3f %14.2f %14s   (%.1f M params/rank, 28 B each)\n",
                  "AdamW.Step", bytes / (1 << 20), t * 1e3, bytes / t / 1e9, "-", params / 1e6);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::ParseCommandLineWithUsage(
      argc, argv,
      "Measures all-reduce bandwidth (1..128 MiB float buffers, or --sizes_mib), the bucketed gradient\n"
      "all-reduce and AdamW step throughput. Usage: mpirun -np 2 mla-bench-comm [flags]");
  return mla::ExitStatus("mla-bench-comm", mla::Run());
}
