// mla-train: trains a GPT with MHA / MLA attention, data-parallel over MPI
// ranks. `mpirun -np N mla-train --flagfile=recipes/X.flags [--flag=...]`, or
// without mpirun as one rank.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/writer.h"
#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "glog/logging.h"
#include "runtime/model_flags.h"
#include "runtime/trainer.h"

// Model: the shared model flags (runtime/model_flags.h).
// Data.
ABSL_FLAG(std::string, train_data, "data/train.bin", "Training token shard (mla-data tokenize).");
ABSL_FLAG(std::string, val_data, "data/val.bin", "Validation token shard; empty disables validation.");
ABSL_FLAG(std::string, tokenizer, "data/tokenizer.model", "sentencepiece model stored in every checkpoint; empty: none (or the one from the resumed checkpoint).");
// Batch and length.
ABSL_FLAG(int64_t, global_batch_tokens, 16 * 512, "Tokens per optimizer step over all ranks (a multiple of context_length).");
ABSL_FLAG(int, micro_batch, 16, "Sequences per forward/backward on one rank; accumulation steps = global batch / (ranks * micro_batch).");
ABSL_FLAG(int64_t, steps, 0, "Optimizer steps (0: derived from --token_budget).");
ABSL_FLAG(int64_t, token_budget, 0, "Training tokens when --steps is 0 (rounded up to whole steps).");
// Optimizer.
ABSL_FLAG(double, lr, 1e-3, "Peak learning rate.");
ABSL_FLAG(double, min_lr, 1e-4, "Learning rate at the end of the cosine decay.");
ABSL_FLAG(int64_t, warmup_steps, 100, "Linear warmup steps.");
ABSL_FLAG(double, weight_decay, 0.1, "AdamW decoupled weight decay (matrices only).");
ABSL_FLAG(double, beta1, 0.9, "AdamW beta1.");
ABSL_FLAG(double, beta2, 0.95, "AdamW beta2.");
ABSL_FLAG(double, eps, 1e-8, "AdamW epsilon.");
ABSL_FLAG(double, grad_clip, 1.0, "Clip the global gradient norm to this value (0: off).");
ABSL_FLAG(int, zero, 0, "ZeRO stage: 0 replicated optimizer state, 1 sharded over ranks.");
ABSL_FLAG(bool, skip_nonfinite, false, "Skip steps whose loss or gradient norm is NaN/Inf (counted in the metrics) instead of stopping.");
ABSL_FLAG(double, bucket_mb, 25.0, "Gradient all-reduce bucket size in MB.");
ABSL_FLAG(int64_t, seed, 1, "Seed for initialisation and data order.");
// Evaluation, logging, output.
ABSL_FLAG(int64_t, eval_interval, 0, "Validate every N steps (0: only at the end).");
ABSL_FLAG(int64_t, eval_batches, 0, "Validation micro-batches per rank (0: the whole validation shard).");
ABSL_FLAG(int64_t, log_interval, 10, "Print a progress line and a metrics record every N steps.");
ABSL_FLAG(std::string, out_dir, "runs/default", "Output directory: config.json, metrics.jsonl, checkpoints/.");
ABSL_FLAG(double, peak_gflops, 0,
          "Per-rank peak GFLOP/s for MFU (0: measured at start at the run's threads: on the CPU the fastest of square sgemms and of the model's own GEMM shapes, on a GPU a large GEMM).");
// Checkpoints.
ABSL_FLAG(int64_t, ckpt_every, 0, "Write a checkpoint every N steps (0: only at the end and on SIGTERM/SIGINT).");
ABSL_FLAG(int, ckpt_keep_last, 3, "Keep the newest K checkpoints.");
ABSL_FLAG(int, ckpt_keep_every, 0, "Also keep every checkpoint whose step is a multiple of M (0: none).");
ABSL_FLAG(std::string, resume, "", "Resume: 'auto' (newest complete checkpoint in out_dir, or start fresh), or a checkpoint file/directory.");
// Devices.
ABSL_FLAG(std::string, precision, "fp32", "GEMM precision: fp32, or bf16 (--device=cuda only: bf16 GEMM operands with fp32 accumulation; fp32 master weights, gradients and AdamW moments).");
ABSL_FLAG(std::string, device, "cpu", "Device: cpu (CPU kernels, MPI) or cuda (one GPU per rank: CUDA kernels, NCCL, AdamW on the GPU; prints the GPU memory plan and stops early if it does not fit).");
ABSL_FLAG(int, threads, 0, "OpenMP threads per rank (0: OMP_NUM_THREADS or all cores); more than the cores this process may run on are capped, with a warning.");
// Reliability (docs/reliability.md).
ABSL_FLAG(double, collective_timeout, 300,
          "Seconds a collective may make no progress before the job ends, naming the ranks that "
          "stopped answering (a stopped, hung or far slower rank); 0: wait forever.");
ABSL_FLAG(std::vector<std::string>, allow_resume_change, {},
          "Resume: comma-separated parts of the run identity that may differ from the "
          "checkpoint's (tokenizer, train_data, val_data, global_batch_tokens, schedule); any "
          "other difference is refused. The change is logged in metrics.jsonl; a new global "
          "batch continues the epoch without reusing its windows, new training data starts "
          "its first epoch.");

namespace {

// The reliability block of the options: limits checked before anything runs.
absl::Status ApplyReliabilityFlags(mla::TrainOptions* o) {
  if (!(absl::GetFlag(FLAGS_collective_timeout) >= 0))
    return absl::InvalidArgumentError("collective_timeout must be >= 0 seconds (0: none)");
  if (o->threads < 0)
    return absl::InvalidArgumentError(absl::StrCat("threads=", o->threads, ": must be >= 0"));
  o->threads = mla::CapThreads(o->threads, "mla-train");
  o->allow_resume_change = absl::GetFlag(FLAGS_allow_resume_change);
  return absl::OkStatus();
}

absl::StatusOr<mla::TrainOptions> OptionsFromFlags() {
  mla::TrainOptions o;
  // Without --vocab_size (or with 0) the vocabulary is the training shard's.
  mla::ModelConfig from_data;
  from_data.vocab_size = 0;
  o.model = mla::ModelConfigFromFlags(from_data);
  if (o.model.vocab_size != 0) {
    if (absl::Status s = mla::ValidateModelConfig(o.model); !s.ok()) return s;
  } else {
    mla::ModelConfig probe = o.model;
    probe.vocab_size = 2;  // the real value comes from the shard
    if (absl::Status s = mla::ValidateModelConfig(probe); !s.ok()) return s;
  }
  if (absl::GetFlag(FLAGS_device) != "cpu" && absl::GetFlag(FLAGS_device) != "cuda")
    return absl::InvalidArgumentError(
        absl::StrCat("device=", absl::GetFlag(FLAGS_device), ": expected cpu or cuda"));
  o.train_data = absl::GetFlag(FLAGS_train_data);
  o.val_data = absl::GetFlag(FLAGS_val_data);
  o.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  o.out_dir = absl::GetFlag(FLAGS_out_dir);
  o.global_batch_tokens = absl::GetFlag(FLAGS_global_batch_tokens);
  o.micro_batch = absl::GetFlag(FLAGS_micro_batch);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.token_budget = absl::GetFlag(FLAGS_token_budget);
  o.lr = static_cast<float>(absl::GetFlag(FLAGS_lr));
  o.min_lr = static_cast<float>(absl::GetFlag(FLAGS_min_lr));
  o.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
  o.weight_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_decay));
  o.beta1 = static_cast<float>(absl::GetFlag(FLAGS_beta1));
  o.beta2 = static_cast<float>(absl::GetFlag(FLAGS_beta2));
  o.eps = static_cast<float>(absl::GetFlag(FLAGS_eps));
  o.grad_clip = static_cast<float>(absl::GetFlag(FLAGS_grad_clip));
  o.zero_stage = absl::GetFlag(FLAGS_zero);
  o.save_timeout_s = std::max(0.0, absl::GetFlag(FLAGS_collective_timeout));
  o.skip_nonfinite = absl::GetFlag(FLAGS_skip_nonfinite);
  o.bucket_mb = absl::GetFlag(FLAGS_bucket_mb);
  o.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  o.eval_interval = absl::GetFlag(FLAGS_eval_interval);
  o.eval_batches = absl::GetFlag(FLAGS_eval_batches);
  o.log_interval = absl::GetFlag(FLAGS_log_interval);
  o.peak_gflops = absl::GetFlag(FLAGS_peak_gflops);
  o.ckpt_every = absl::GetFlag(FLAGS_ckpt_every);
  o.ckpt_keep_last = absl::GetFlag(FLAGS_ckpt_keep_last);
  o.ckpt_keep_every = absl::GetFlag(FLAGS_ckpt_keep_every);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.threads = absl::GetFlag(FLAGS_threads);
  if (absl::Status s = ApplyReliabilityFlags(&o); !s.ok()) return s;
  o.device = absl::GetFlag(FLAGS_device);
  {
    absl::StatusOr<mla::Precision> precision = mla::ParsePrecision(absl::GetFlag(FLAGS_precision));
    if (!precision.ok()) return precision.status();
    o.precision = *precision;
  }
  for (const mla::ModelConfigField& field : mla::ModelConfigFields()) {
    if (field.name == "vocab_size") continue;  // recorded from the shard as model.vocab_size
    o.flag_record.emplace_back(field.name, mla::ModelConfigFieldText(o.model, field));
  }
  for (const char* name :
       {"train_data", "val_data", "tokenizer", "global_batch_tokens", "micro_batch", "steps",
        "token_budget", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "eps",
        "grad_clip", "zero", "skip_nonfinite", "bucket_mb", "seed", "eval_interval",
        "eval_batches", "device", "precision"}) {
    o.flag_record.emplace_back(name, absl::FindCommandLineFlag(name)->CurrentValue());
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(
      "Trains a GPT language model with multi-head or multi-head latent attention.\n"
      "  mpirun -np N mla-train --flagfile=recipes/cpu/quickstart.flags [--flag=value ...]\n"
      "  mla-train --train_data=data/train.bin --steps=200 --out_dir=runs/x   (one rank)\n"
      "Writes OUT_DIR/config.json, OUT_DIR/metrics.jsonl and OUT_DIR/checkpoints/.");
  mla::BlockStopSignals();  // before MPI or OpenMP start any thread
  if (absl::Status s = mla::CheckFlagfiles(argc, argv); !s.ok()) {
    std::fprintf(stderr, "mla-train: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (absl::Status s = mla::CheckNoStrayArguments(positional); !s.ok()) {
    std::fprintf(stderr, "mla-train: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  auto session = mla::MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "mla-train: %s\n", std::string(session.status().message()).c_str());
    return 1;
  }
  auto comm = mla::CreateCommunicator(std::max(0.0, absl::GetFlag(FLAGS_collective_timeout)));
  if (!comm.ok()) mla::AbortJob(comm.status());
  auto options = OptionsFromFlags();
  absl::Status status = options.ok() ? absl::OkStatus() : options.status();
  status = mla::AgreeOnStatus(**comm, status);
  if (status.ok()) {
    status = mla::RunTraining(*options, comm->get());
  }
  if (!status.ok()) {
    if ((*comm)->rank() == 0 || !options.ok())
      std::fprintf(stderr, "mla-train: error: %s\n", std::string(status.message()).c_str());
    if (mla::ckpt::SaveLeftHdf5Damaged()) {
      // HDF5 would crash in its shutdown hook; end without it.
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(1);
    }
    comm->reset();
    return 1;
  }
  comm->reset();
  return 0;
}
