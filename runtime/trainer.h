#pragma once
// Trainer: the data-parallel training loop of mla-train. One instance per
// MPI rank; all ranks run the same sequence of collectives.
//
// Per step: every rank takes its slice of the global batch (runtime/data), runs
// `accum` micro-batches of forward+backward, and gradient buckets are
// averaged across ranks while the last micro-batch's backward still runs
// (non-blocking all-reduce; ZeRO-1: one reduce-scatter at the end). Then
// global-norm clipping, the non-finite guard, AdamW (on the rank's shard under
// ZeRO-1, followed by an all-gather of the parameters), the LR schedule,
// periodic validation, metrics, checkpoints and signal handling.
//
// Device: --device=cpu trains with CpuKernels on host memory; --device=cuda
// with CudaKernels on the rank's GPU, NCCL for gradients and parameters, and
// AdamW on the device (runtime/training_device.h). The loop is the same.
//
// Failure: Run returns a status; a failure seen by one rank is agreed on by
// all (AgreeOnStatus) so no rank hangs in a collective.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "comm/communicator.h"
#include "runtime/model_config.h"
#include "runtime/training_device.h"

namespace mla {

struct TrainOptions {
  ModelConfig model;  // vocab_size 0: taken from the training shard
  std::string train_data, val_data, tokenizer;
  std::string out_dir;
  int64_t global_batch_tokens = 0;  // tokens per optimizer step, all ranks
  int micro_batch = 0;              // sequences per forward/backward on one rank
  int64_t steps = 0;                // 0: derived from token_budget
  int64_t token_budget = 0;
  float lr = 6e-4f, min_lr = 6e-5f;
  int64_t warmup_steps = 0;
  float weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float grad_clip = 1.0f;  // 0: no clipping
  uint64_t seed = 1;
  int64_t eval_interval = 0;  // 0: only at the end
  int64_t eval_batches = 0;   // per rank; 0: the whole validation shard
  int64_t log_interval = 10;
  int zero_stage = 0;
  bool skip_nonfinite = false;
  double bucket_mb = 25.0;
  double peak_gflops = 0;  // for MFU; 0: measured at start (large sgemm)
  int64_t ckpt_every = 0;  // 0: only at the end
  int ckpt_keep_last = 3;
  int ckpt_keep_every = 0;
  // A checkpoint save (parallel HDF5: collectives inside MPI-IO that the
  // communicator's timeout cannot see) that takes longer ends the job
  // (comm/watchdog.h); 0: no limit. mla-train sets --collective_timeout.
  double save_timeout_s = 0;
  std::string resume;  // "", "auto" or a checkpoint path
  int threads = 0;     // OpenMP threads per rank; 0: leave as is
  std::string device = "cpu";  // "cpu" or "cuda" (runtime/training_device.h)
  Precision precision = Precision::kFp32;  // bf16: CUDA GEMM operands only
  // What a resumed run may change against its checkpoint's identity
  // (kResumeIdentity names); anything else that differs is refused.
  std::vector<std::string> allow_resume_change;
  // Flag values as given, recorded in config.json and the checkpoint.
  std::vector<std::pair<std::string, std::string>> flag_record;
};

// What a run depends on besides the model config: recorded in every
// checkpoint as "identity.<name>" config entries and compared on resume
// (docs/checkpoint-format.md). --steps is not part of it: raising it extends
// a run.
inline constexpr const char* kResumeIdentity[] = {"tokenizer", "train_data", "val_data",
                                                  "global_batch_tokens", "schedule"};

// Checks the options that need no data (batch arithmetic, ranges).
absl::Status ValidateTrainOptions(const TrainOptions& options, int world_size);

// Runs training to completion (or until SIGINT/SIGTERM, after which the
// current step finishes, a checkpoint is written and Run returns OK).
// The device is CreateTrainingDevice(options.device, options.precision, comm).
absl::Status RunTraining(const TrainOptions& options, Communicator* comm);
// The same on a given device (tests substitute one); `device` must use `comm`
// as its host communicator.
absl::Status RunTraining(const TrainOptions& options, Communicator* comm,
                         std::unique_ptr<TrainingDevice> device);

// Blocks SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 in the calling thread and every
// thread it starts afterwards; call first thing in main (before MPI and
// OpenMP start threads). RunTraining then takes them synchronously between
// steps: the current step finishes, a checkpoint is written, Run returns OK.
void BlockStopSignals();

}  // namespace mla
