#include "runtime/trainer.h"

#include <mpi.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/json.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "checkpoint/reader.h"
#include "checkpoint/writer.h"
#include "comm/watchdog.h"
#include "glog/logging.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/zero.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/token_shard.h"
#include "runtime/data/tokenizer.h"
#include "runtime/gpt_model.h"
#include "runtime/host_staging.h"
#include "runtime/memory_plan.h"
#include "runtime/model_checkpoint.h"
#include "runtime/run_lock.h"

namespace mla {
namespace {

// The stop signals are blocked in every thread (BlockStopSignals) and taken
// synchronously once per step, so no signal ever interrupts MPI, HDF5 or
// malloc in the middle of their work.
sigset_t StopSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&set, sig);
  return set;
}

int stop_signal_seen = 0;

// The stop signal received so far (0: none); consumes pending ones.
int TakeStopSignal() {
  const sigset_t set = StopSignalSet();
  const timespec no_wait = {0, 0};
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &no_wait);
    if (sig <= 0) break;
    stop_signal_seen = sig;
  }
  return stop_signal_seen;
}

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, (s / 60) % 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(what, " ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(what, " ", path, ": read failed"));
  return ss.str();
}

// The step of a metrics.jsonl row ({"step": N, ...}), or -1.
int64_t StepOfMetricsRow(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, "{\"step\": ")) return -1;
  const size_t end = line.find_first_not_of("0123456789");
  int64_t step = -1;
  if (end == 0 || !absl::SimpleAtoi(line.substr(0, end), &step)) return -1;
  return step;
}

// On resume: drops the rows of metrics.jsonl past the checkpoint's `step`
// (written after it by the run that is being resumed, and about to be written
// again) and a torn last line, so the log has no duplicate or backward steps.
absl::Status TruncateMetricsAfter(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return WriteFileAtomically(path, "");
  MLA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, "metrics"));
  std::string kept;
  int64_t dropped = 0;
  for (absl::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    if (nl == absl::string_view::npos) {  // torn by a kill mid-write
      ++dropped;
      break;
    }
    const absl::string_view line = rest.substr(0, nl + 1);
    rest.remove_prefix(nl + 1);
    if (StepOfMetricsRow(line) > step) {
      ++dropped;
      continue;
    }
    absl::StrAppend(&kept, line);
  }
  if (dropped == 0) return absl::OkStatus();
  LOG(INFO) << path << ": dropped " << dropped << " row(s) logged after step " << step
            << " by the run being resumed";
  return WriteFileAtomically(path, kept);
}

// The tokenizer stored with the model must not produce ids the model lacks.
absl::Status CheckTokenizerFits(const std::string& bytes, const std::string& source,
                                int vocab_size) {
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::LoadFromBytes(bytes);
  if (!tokenizer.ok())
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat("tokenizer ", source, ": ", tokenizer.status().message()));
  if (tokenizer->vocab_size() > vocab_size)
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", source, " has ", tokenizer->vocab_size(),
                     " pieces, more than the model's vocab_size=", vocab_size));
  return absl::OkStatus();
}

// Checkpoint config entries that record the run's identity.
constexpr char kIdentityPrefix[] = "identity.";

// The loader position after a change of the global batch from `old_rows` to
// `new_rows` sequences: the same epoch, at the first new-size batch that
// starts at or after the windows already used, so no window of the epoch is
// used twice (fewer than new_rows are skipped); the next epoch when none is
// left.
LoaderState RebatchedPosition(const LoaderState& saved, int64_t old_rows, int64_t new_rows,
                              int64_t new_steps_per_epoch) {
  LoaderState next = saved;
  next.step = (saved.step * old_rows + new_rows - 1) / new_rows;
  if (next.step >= new_steps_per_epoch) {
    next.epoch += 1;
    next.step = 0;
  }
  return next;
}

struct Shapes {
  int T = 0;
  int64_t global_rows = 0;  // G
  int64_t rows_per_rank = 0;
  int accum = 0;
  int64_t steps = 0;
};

absl::StatusOr<Shapes> DeriveShapes(const TrainOptions& o, int world) {
  Shapes s;
  s.T = o.model.context_length;
  if (s.T < 1) return absl::InvalidArgumentError("context_length must be at least 1");
  if (o.global_batch_tokens <= 0)
    return absl::InvalidArgumentError("global_batch_tokens must be positive");
  if (o.global_batch_tokens % s.T != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "global_batch_tokens=", o.global_batch_tokens, " must be a multiple of context_length=", s.T));
  s.global_rows = o.global_batch_tokens / s.T;
  if (s.global_rows % world != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "global batch of ", s.global_rows, " sequences does not split over ", world, " ranks"));
  s.rows_per_rank = s.global_rows / world;
  if (o.micro_batch <= 0) return absl::InvalidArgumentError("micro_batch must be positive");
  if (s.rows_per_rank % o.micro_batch != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "micro_batch=", o.micro_batch, " must divide the ", s.rows_per_rank,
        " sequences per rank (global_batch_tokens / context_length / ranks)"));
  s.accum = static_cast<int>(s.rows_per_rank / o.micro_batch);
  if (o.steps > 0) {
    s.steps = o.steps;
  } else if (o.token_budget > 0) {
    s.steps = (o.token_budget + o.global_batch_tokens - 1) / o.global_batch_tokens;
  } else {
    return absl::InvalidArgumentError("give --steps or --token_budget");
  }
  return s;
}

}  // namespace

void BlockStopSignals() {
  // Open MPI's mpirun forwards SIGUSR1/SIGUSR2 to the ranks (not SIGTERM), so
  // `kill -USR1 <mpirun>` stops an mpirun-launched job the same way.
  const sigset_t set = StopSignalSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status ValidateTrainOptions(const TrainOptions& o, int world) {
  MLA_RETURN_IF_ERROR(DeriveShapes(o, world).status());
  if (!(o.lr > 0)) return absl::InvalidArgumentError("lr must be positive");
  if (!(o.min_lr >= 0 && o.min_lr <= o.lr))
    return absl::InvalidArgumentError("min_lr must be in [0, lr]");
  if (o.warmup_steps < 0) return absl::InvalidArgumentError("warmup_steps must be >= 0");
  if (!(o.weight_decay >= 0)) return absl::InvalidArgumentError("weight_decay must be >= 0");
  if (!(o.beta1 >= 0 && o.beta1 < 1)) return absl::InvalidArgumentError("beta1 must be in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) return absl::InvalidArgumentError("beta2 must be in [0, 1)");
  if (!(o.eps > 0)) return absl::InvalidArgumentError("eps must be positive");
  if (!(o.grad_clip >= 0)) return absl::InvalidArgumentError("grad_clip must be >= 0 (0: off)");
  if (o.zero_stage != 0 && o.zero_stage != 1)
    return absl::InvalidArgumentError(absl::StrCat("zero=", o.zero_stage, ": must be 0 or 1"));
  if (o.log_interval < 1) return absl::InvalidArgumentError("log_interval must be at least 1");
  if (o.eval_interval < 0 || o.eval_batches < 0)
    return absl::InvalidArgumentError("eval_interval and eval_batches must be >= 0");
  if (o.ckpt_every < 0) return absl::InvalidArgumentError("ckpt_every must be >= 0");
  if (o.ckpt_keep_last < 1) return absl::InvalidArgumentError("ckpt_keep_last must be at least 1");
  if (o.ckpt_keep_every < 0) return absl::InvalidArgumentError("ckpt_keep_every must be >= 0");
  if (!(o.bucket_mb > 0)) return absl::InvalidArgumentError("bucket_mb must be positive");
  if (o.device != "cpu" && o.device != "cuda")
    return absl::InvalidArgumentError(absl::StrCat("device=", o.device, ": expected cpu or cuda"));
  if (o.train_data.empty()) return absl::InvalidArgumentError("train_data is required");
  if (o.out_dir.empty()) return absl::InvalidArgumentError("out_dir is required");
  for (const std::string& name : o.allow_resume_change)
    if (std::find(std::begin(kResumeIdentity), std::end(kResumeIdentity), name) ==
        std::end(kResumeIdentity))
      return absl::InvalidArgumentError(absl::StrCat(
          "allow_resume_change: unknown item '", name, "' (expected some of ",
          absl::StrJoin(kResumeIdentity, ","), ")"));
  return absl::OkStatus();
}

namespace {

// Everything one rank holds during training.
class Run {
 public:
  Run(const TrainOptions& o, Communicator* comm, std::unique_ptr<TrainingDevice> device)
      : o_(o), comm_(comm), device_(std::move(device)) {}

  absl::Status Setup();
  absl::Status Loop();

 private:
  absl::Status Resume(const std::string& path);
  // This run's identity (kResumeIdentity order): name → value.
  std::vector<std::pair<std::string, std::string>> Identity() const;
  // Compares the checkpoint's identity with this run's; returns the names
  // that differ and are allowed to (anything else is refused).
  absl::StatusOr<std::vector<std::string>> CheckIdentity(const ckpt::CheckpointReader& reader,
                                                         const std::string& path) const;
  absl::Status Save();
  absl::StatusOr<double> Evaluate();
  // Appends a metrics row (rank 0); a failed write is kept in output_status_
  // and ends the run at the next agreement point.
  void Log(const std::string& json_line);

  const TrainOptions& o_;
  Communicator* comm_;  // host communicator: scalars and agreement
  std::unique_ptr<TrainingDevice> device_;
  int rank_ = 0, world_ = 1;
  Shapes shapes_;
  ModelConfig config_;
  std::unique_ptr<GptModel> model_;
  std::optional<DataLoader> loader_;
  std::optional<ValidationIterator> val_;
  std::optional<Zero1Sharding> zero_;
  ElementRange range_;
  LrSchedule schedule_;
  std::string tokenizer_bytes_;
  std::vector<std::string> resume_changes_;  // identity items changed at resume, for the log
  std::vector<int32_t> inputs_, targets_;
  int64_t step_ = 0, tokens_seen_ = 0, skipped_ = 0;
  double peak_gflops_ = 0;
  std::optional<AppendLog> metrics_;  // rank 0 only
  absl::Status output_status_;        // rank 0: the first failed metrics write
};

absl::Status Run::Setup() {
  rank_ = comm_->rank();
  world_ = comm_->size();
  MLA_ASSIGN_OR_RETURN(shapes_, DeriveShapes(o_, world_));
  MLA_ASSIGN_OR_RETURN(ShardHeader header, ReadShardHeader(o_.train_data));
  config_ = o_.model;
  if (config_.vocab_size == 0) config_.vocab_size = static_cast<int>(header.vocab_size);
  if (static_cast<uint32_t>(config_.vocab_size) < header.vocab_size)
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size=", config_.vocab_size, " is smaller than the vocabulary of ", o_.train_data,
        " (", header.vocab_size, ")"));
  MemoryPlanOptions plan;
  plan.micro_batch = o_.micro_batch;
  plan.seq_len = shapes_.T;
  plan.zero_stage = o_.zero_stage;
  plan.world_size = world_;
  plan.precision = o_.precision;
  plan.measure_peak = o_.peak_gflops <= 0;
  MLA_RETURN_IF_ERROR(device_->CheckMemory(config_, plan, rank_ == 0));
  MLA_ASSIGN_OR_RETURN(model_, GptModel::Create(config_, &device_->kernels()));
  model_->Reserve(o_.micro_batch, shapes_.T);
  DataLoaderOptions lo;
  lo.seq_len = shapes_.T;
  lo.global_batch = static_cast<int>(shapes_.global_rows);
  lo.rank = rank_;
  lo.world_size = world_;
  lo.seed = o_.seed;
  MLA_ASSIGN_OR_RETURN(DataLoader loader, DataLoader::Create(o_.train_data, lo));
  loader_.emplace(std::move(loader));
  if (!o_.val_data.empty()) {
    MLA_ASSIGN_OR_RETURN(ValidationIterator val, ValidationIterator::Create(
                                                     o_.val_data, shapes_.T, o_.micro_batch,
                                                     rank_, world_));
    val_.emplace(std::move(val));
    // Every shard the model reads, not only the training one: a token id at
    // or past the model's vocabulary would index outside the embedding.
    if (val_->shard_header().vocab_size > static_cast<uint32_t>(config_.vocab_size))
      return absl::InvalidArgumentError(absl::StrCat(
          "the vocabulary of ", o_.val_data, " (", val_->shard_header().vocab_size,
          ") exceeds the model's vocab_size=", config_.vocab_size));
  }
  if (!o_.tokenizer.empty()) {
    MLA_ASSIGN_OR_RETURN(tokenizer_bytes_, ReadWholeFile(o_.tokenizer, "tokenizer"));
    MLA_RETURN_IF_ERROR(CheckTokenizerFits(tokenizer_bytes_, o_.tokenizer, config_.vocab_size));
  }
  const int64_t total = model_->num_params();
  if (o_.zero_stage == 1) {
    zero_.emplace(&device_->buffer_comm(), total);
    range_ = zero_->shard();
  } else {
    range_ = ElementRange{0, total};
  }
  const std::vector<DecaySegment> segments = DecaySegments(model_->layout());
  AdamWConfig ac;
  ac.beta1 = o_.beta1;
  ac.beta2 = o_.beta2;
  ac.eps = o_.eps;
  ac.weight_decay = o_.weight_decay;
  MLA_RETURN_IF_ERROR(device_->CreateOptimizer(ac, range_, segments));
  schedule_ = LrSchedule{o_.lr, o_.min_lr, std::min(o_.warmup_steps, shapes_.steps), shapes_.steps};
  MLA_RETURN_IF_ERROR(ValidateLrSchedule(schedule_));
  inputs_.resize(shapes_.rows_per_rank * shapes_.T);
  targets_.resize(inputs_.size());

  std::string resume_path;
  if (!o_.resume.empty()) {
    const std::string ckpt_dir = o_.out_dir + "/checkpoints";
    auto resolved = ckpt::ResolveCheckpoint(o_.resume, ckpt_dir);
    if (resolved.ok()) {
      resume_path = *resolved;
    } else if (o_.resume == "auto" && absl::IsNotFound(resolved.status())) {
      if (rank_ == 0) LOG(INFO) << "resume=auto: no checkpoint in " << ckpt_dir << ", starting fresh";
    } else {
      return resolved.status();
    }
  }
  if (!resume_path.empty()) {
    MLA_RETURN_IF_ERROR(Resume(resume_path));
    if (step_ > shapes_.steps)
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", resume_path, " is at step ", step_, ", past this run's ", shapes_.steps,
          " steps (--steps / --token_budget); raise them to continue training it"));
  } else {
    model_->InitParameters(o_.seed);
  }
  MLA_RETURN_IF_ERROR(device_->ParametersChanged(model_->params(), model_->num_params()));
  peak_gflops_ = o_.peak_gflops > 0
                     ? o_.peak_gflops
                     : device_->MeasurePeakGflops(config_, int64_t{o_.micro_batch} * shapes_.T);

  if (rank_ == 0) {
    std::string cfg = "{";
    bool first = true;
    auto put = [&](const std::string& k, const std::string& v, bool quote) {
      absl::StrAppend(&cfg, first ? "" : ", ", json::Quote(k), ": ", quote ? json::Quote(v) : v);
      first = false;
    };
    for (const ckpt::ConfigEntry& e : ModelConfigEntries(config_))
      put("model." + e.key, ckpt::ConfigValueToString(e.value), std::holds_alternative<std::string>(e.value));
    for (const auto& [k, v] : o_.flag_record) put("flag." + k, v, true);
    put("world_size", absl::StrCat(world_), false);
    put("accumulation_steps", absl::StrCat(shapes_.accum), false);
    put("steps", absl::StrCat(shapes_.steps), false);
    cfg += "}\n";
    MLA_RETURN_IF_ERROR(WriteFileAtomically(o_.out_dir + "/config.json", cfg));
    const std::string metrics_path = o_.out_dir + "/metrics.jsonl";
    if (resume_path.empty()) {
      MLA_RETURN_IF_ERROR(WriteFileAtomically(metrics_path, ""));
    } else {
      MLA_RETURN_IF_ERROR(TruncateMetricsAfter(metrics_path, step_));
    }
    MLA_ASSIGN_OR_RETURN(AppendLog log, AppendLog::Open(metrics_path));
    metrics_.emplace(std::move(log));
    if (!resume_changes_.empty())
      Log(absl::StrFormat("{\"step\": %d, \"resumed_from\": %s, \"changed\": %s}", step_,
                          json::Quote(resume_path),
                          json::Quote(absl::StrJoin(resume_changes_, ","))));
    const ModelCost cost = ComputeModelCost(config_);
    std::printf(
        "mla-train: %s, %lld parameters, %d ranks x %d threads | global batch %lld seqs x %d "
        "tokens, micro-batch %d, accumulation %d | %lld steps | peak %.1f GFLOP/s per rank\n",
        std::string(AttentionKindName(config_.attention)).c_str(),
        static_cast<long long>(cost.parameters), world_, omp_get_max_threads(),
        static_cast<long long>(shapes_.global_rows), shapes_.T, o_.micro_batch, shapes_.accum,
        static_cast<long long>(shapes_.steps), peak_gflops_);
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

std::string ShardIdentity(const ShardHeader& h) {
  return absl::StrFormat("fnv1a64 %016x, %d tokens, vocab %d", h.checksum, h.token_count,
                         h.vocab_size);
}

std::vector<std::pair<std::string, std::string>> Run::Identity() const {
  return {
      {"tokenizer", tokenizer_bytes_.empty()
                        ? std::string("none")
                        : absl::StrFormat("fnv1a64 %016x, %d bytes",
                                          Fnv1a64(tokenizer_bytes_.data(), tokenizer_bytes_.size()),
                                          tokenizer_bytes_.size())},
      {"train_data", ShardIdentity(loader_->shard_header())},
      {"val_data", val_.has_value() ? ShardIdentity(val_->shard_header()) : std::string("none")},
      {"global_batch_tokens", absl::StrCat(o_.global_batch_tokens)},
      {"schedule", absl::StrFormat("lr %g, min_lr %g, warmup_steps %d", o_.lr, o_.min_lr,
                                   o_.warmup_steps)},
  };
}

absl::StatusOr<std::vector<std::string>> Run::CheckIdentity(const ckpt::CheckpointReader& reader,
                                                            const std::string& path) const {
  std::vector<std::string> changed, allowed_lines, refused_lines;
  bool recorded = false;
  for (const auto& [name, mine] : Identity()) {
    const std::string key = absl::StrCat(kIdentityPrefix, name);
    const auto it = std::find_if(reader.config().begin(), reader.config().end(),
                                 [&](const ckpt::ConfigEntry& e) { return e.key == key; });
    if (it == reader.config().end()) continue;
    recorded = true;
    const std::string saved = ckpt::ConfigValueToString(it->value);
    if (saved == mine) continue;
    const std::string line = absl::StrCat("  ", name, ": checkpoint ", saved, "; this run ", mine);
    if (std::find(o_.allow_resume_change.begin(), o_.allow_resume_change.end(), name) !=
        o_.allow_resume_change.end()) {
      changed.push_back(name);
      allowed_lines.push_back(line);
    } else {
      refused_lines.push_back(line);
    }
  }
  if (!recorded && rank_ == 0)
    LOG(WARNING) << "checkpoint " << path
                 << " records no run identity (written before it was recorded): the tokenizer, "
                    "shards, global batch and schedule are not compared";
  if (!refused_lines.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", path, " was written by a different run:\n",
        absl::StrJoin(refused_lines, "\n"),
        "\npass --allow_resume_change=<names> to accept these changes"));
  if (rank_ == 0)
    for (const std::string& line : allowed_lines)
      LOG(WARNING) << "resuming with a changed run identity (allowed):" << line;
  return changed;
}

absl::Status Run::Resume(const std::string& path) {
  MLA_ASSIGN_OR_RETURN(ckpt::CheckpointReader reader, ckpt::CheckpointReader::Open(path));
  MLA_ASSIGN_OR_RETURN(ModelConfig saved, ModelConfigFromEntries(reader.config()));
  if (ModelConfigToString(saved) != ModelConfigToString(config_))
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", path, " holds a different model config:\n", ModelConfigToString(saved),
        "than the one requested:\n", ModelConfigToString(config_)));
  MLA_RETURN_IF_ERROR(reader.ExpectLayout(TensorSpecs(model_->layout())));
  MLA_RETURN_IF_ERROR(FillFromHost(device_->kernels(), model_->params(), model_->num_params(),
                                   [&](absl::Span<float> params) {
                                     return ReadPaddedRange(reader, ckpt::FlatBuffer::kParams,
                                                            model_->layout(), 0, params);
                                   }));
  MLA_RETURN_IF_ERROR(device_->LoadMoments(AdamMoment::kM, [&](absl::Span<float> m) {
    return ReadPaddedRange(reader, ckpt::FlatBuffer::kAdamM, model_->layout(), range_.begin, m);
  }));
  MLA_RETURN_IF_ERROR(device_->LoadMoments(AdamMoment::kV, [&](absl::Span<float> v) {
    return ReadPaddedRange(reader, ckpt::FlatBuffer::kAdamV, model_->layout(), range_.begin, v);
  }));
  device_->set_optimizer_step(reader.adamw().step);
  if (tokenizer_bytes_.empty()) {
    MLA_ASSIGN_OR_RETURN(tokenizer_bytes_, reader.ReadTokenizerModel());
  }
  MLA_ASSIGN_OR_RETURN(resume_changes_, CheckIdentity(reader, path));
  auto changed = [&](absl::string_view name) {
    return std::find(resume_changes_.begin(), resume_changes_.end(), name) != resume_changes_.end();
  };
  MLA_ASSIGN_OR_RETURN(std::vector<int64_t> loader_ints, reader.ReadState("data_loader"));
  MLA_ASSIGN_OR_RETURN(LoaderState ls, LoaderState::FromInts(loader_ints));
  if (changed("train_data")) {
    // The saved position indexes another shard's windows: start this one afresh.
    ls = LoaderState{0, 0, static_cast<int64_t>(o_.seed)};
  } else if (changed("global_batch_tokens")) {
    int64_t old_tokens = 0;
    for (const ckpt::ConfigEntry& e : reader.config())
      if (e.key == absl::StrCat(kIdentityPrefix, "global_batch_tokens") &&
          !absl::SimpleAtoi(ckpt::ConfigValueToString(e.value), &old_tokens))
        old_tokens = 0;
    if (old_tokens <= 0 || old_tokens % shapes_.T != 0)
      return absl::DataLossError(absl::StrCat("checkpoint ", path,
                                              ": unreadable identity.global_batch_tokens"));
    ls = RebatchedPosition(ls, old_tokens / shapes_.T, shapes_.global_rows,
                           loader_->steps_per_epoch());
  }
  MLA_RETURN_IF_ERROR(loader_->Restore(ls));
  MLA_ASSIGN_OR_RETURN(std::vector<int64_t> sched, reader.ReadState("schedule"));
  if (sched.size() != 3)
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": state/schedule must hold 3 values"));
  step_ = sched[0];
  tokens_seen_ = sched[1];
  skipped_ = sched[2];
  if (rank_ == 0)
    std::printf("mla-train: resumed from %s at step %lld (written by %lld ranks, ZeRO-%lld)\n",
                path.c_str(), static_cast<long long>(step_),
                static_cast<long long>(reader.header().world_size),
                static_cast<long long>(reader.header().zero_stage));
  return absl::OkStatus();
}

absl::Status Run::Save() {
  ckpt::CheckpointState st;
  st.header.step = step_;
  st.header.tokens_seen = tokens_seen_;
  st.header.zero_stage = o_.zero_stage;
  st.config = ModelConfigEntries(config_);
  for (const auto& [k, v] : o_.flag_record) st.config.push_back({"train." + k, v});
  for (const auto& [k, v] : Identity()) st.config.push_back({absl::StrCat(kIdentityPrefix, k), v});
  st.layout = TensorSpecs(model_->layout());
  const int64_t total = model_->num_params();
  const ckpt::FlatRange mine = ckpt::EvenShard(total, rank_, world_);
  // Host views of device buffers (copies only when the memory is not host
  // memory); they must outlive SaveCheckpoint.
  std::vector<float> params_host, m_host, v_host, params_packed, m_packed, v_packed;
  const ParameterLayout& layout = model_->layout();
  st.params = PackedSlice(layout, mine.lo,
                          HostView(device_->kernels(), model_->params() + mine.lo, mine.size(),
                                   &params_host),
                          &params_packed);
  // ZeRO-1 saves this rank's optimizer shard; otherwise the checkpoint's own shard.
  const ElementRange moments = o_.zero_stage == 1 ? range_ : ElementRange{mine.lo, mine.hi};
  const int64_t offset = moments.begin - range_.begin;
  st.adam_m = PackedSlice(layout, moments.begin,
                          device_->MomentsOnHost(AdamMoment::kM, offset, moments.size(), &m_host),
                          &m_packed);
  st.adam_v = PackedSlice(layout, moments.begin,
                          device_->MomentsOnHost(AdamMoment::kV, offset, moments.size(), &v_host),
                          &v_packed);
  st.adamw.step = device_->optimizer_step();
  st.adamw.beta1 = o_.beta1;
  st.adamw.beta2 = o_.beta2;
  st.adamw.eps = o_.eps;
  st.adamw.weight_decay = o_.weight_decay;
  const auto ls = loader_->state().ToInts();
  st.state.push_back({"data_loader", std::vector<int64_t>(ls.begin(), ls.end())});
  st.state.push_back({"schedule", {step_, tokens_seen_, skipped_}});
  st.state.push_back({"rng", {static_cast<int64_t>(o_.seed)}});
  st.tokenizer_model = tokenizer_bytes_;
  ckpt::SaveOptions so;
  so.dir = o_.out_dir + "/checkpoints";
  so.keep_last = o_.ckpt_keep_last;
  so.keep_every = o_.ckpt_keep_every;
  so.agree = [this](const absl::Status& local) { return AgreeOnStatus(*comm_, local); };
  const auto t0 = Clock::now();
  absl::StatusOr<std::string> saved;
  {
    Watchdog guard(o_.save_timeout_s, absl::StrCat("the checkpoint save at step ", step_));
    saved = ckpt::SaveCheckpoint(MPI_COMM_WORLD, st, so);
  }
  MLA_ASSIGN_OR_RETURN(std::string path, std::move(saved));
  if (rank_ == 0) {
    std::printf("mla-train: checkpoint %s (%.2f s)\n", path.c_str(), Since(t0));
    std::fflush(stdout);
    Log(absl::StrFormat("{\"step\": %d, \"checkpoint\": %s, \"save_s\": %.3f}", step_,
                        json::Quote(path), Since(t0)));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Run::Evaluate() {
  if (!val_.has_value()) return std::nan("");
  val_->Reset();
  const int T = shapes_.T;
  std::vector<int32_t> in(static_cast<size_t>(o_.micro_batch) * T), tg(in.size());
  double sums[2] = {0, 0};  // loss·rows, rows
  int64_t batches = 0;
  while (o_.eval_batches == 0 || batches < o_.eval_batches) {
    const int rows = val_->NextBatch(in.data(), tg.data());
    if (rows == 0) break;
    sums[0] += model_->Forward(in.data(), tg.data(), rows, T) * rows;
    sums[1] += rows;
    ++batches;
  }
  MLA_RETURN_IF_ERROR(comm_->AllReduce(absl::MakeSpan(sums, 2), ReduceOp::kSum));
  if (sums[1] == 0) return absl::FailedPreconditionError("validation shard has no windows");
  return sums[0] / sums[1];
}

void Run::Log(const std::string& line) {
  if (!metrics_.has_value() || !output_status_.ok()) return;
  output_status_ = metrics_->AppendLine(line);
}

absl::Status Run::Loop() {
  const int B = o_.micro_batch, T = shapes_.T;
  const int64_t total = model_->num_params();
  const double flops_per_token = ComputeModelCost(config_).train_flops_per_token;
  const float grad_scale = 1.0f / (static_cast<float>(B) * T * shapes_.accum);
  GradientReducer reducer(&device_->buffer_comm(), absl::MakeSpan(model_->grads(), total),
                          o_.zero_stage == 1 ? GradientSync::kReduceScatter : GradientSync::kAllReduce,
                          o_.bucket_mb);
  const auto start = Clock::now();
  const int64_t first_step = step_;
  if (step_ == shapes_.steps && rank_ == 0) {
    std::printf(
        "mla-train: the resumed checkpoint is already at step %lld of %lld; nothing to train\n",
        static_cast<long long>(step_), static_cast<long long>(shapes_.steps));
    std::fflush(stdout);
  }
  double window_time = 0, window_comm = 0;
  int64_t window_steps = 0;
  while (step_ < shapes_.steps) {
    const auto t0 = Clock::now();
    double comm_s = 0;
    loader_->NextBatch(inputs_.data(), targets_.data());
    model_->ZeroGrads();
    double loss = 0;
    absl::Status reduce_status;
    for (int a = 0; a < shapes_.accum; ++a) {
      const int32_t* in = inputs_.data() + static_cast<int64_t>(a) * B * T;
      const int32_t* tg = targets_.data() + static_cast<int64_t>(a) * B * T;
      loss += model_->Forward(in, tg, B, T, grad_scale);
      if (world_ > 1 && a + 1 == shapes_.accum) {
        model_->Backward(in, B, T, [&](int64_t begin, int64_t end) {
          const auto c0 = Clock::now();
          if (reduce_status.ok()) reduce_status = reducer.MarkReady(begin, end);
          comm_s += Since(c0);
        });
      } else {
        model_->Backward(in, B, T);
      }
    }
    loss /= shapes_.accum;
    if (world_ > 1) {
      const auto c0 = Clock::now();
      MLA_RETURN_IF_ERROR(reduce_status);
      MLA_RETURN_IF_ERROR(reducer.Finish());
      double l = loss;
      MLA_RETURN_IF_ERROR(comm_->AllReduce(absl::MakeSpan(&l, 1), ReduceOp::kAverage));
      loss = l;
      comm_s += Since(c0);
    }
    float* grads = model_->grads() + range_.begin;
    const auto c1 = Clock::now();
    MLA_ASSIGN_OR_RETURN(ClipResult clip,
                         device_->ClipGradNorm(grads, range_.size(), o_.grad_clip,
                                               o_.zero_stage == 1 ? comm_ : nullptr));
    if (o_.zero_stage == 1) comm_s += Since(c1);
    const float lr = LearningRate(schedule_, step_);
    const bool finite = clip.finite && std::isfinite(loss);
    if (!finite && !o_.skip_nonfinite) {
      return absl::DataLossError(absl::StrFormat(
          "non-finite %s at step %d (loss %g, gradient norm %g); the parameters were not "
          "updated. Lower the learning rate, or pass --skip_nonfinite to skip such steps",
          std::isfinite(loss) ? "gradient norm" : "loss", step_, loss, clip.norm));
    }
    if (finite) {
      device_->OptimizerStep(model_->params() + range_.begin, grads, lr);
      if (o_.zero_stage == 1) {
        const auto c2 = Clock::now();
        MLA_RETURN_IF_ERROR(zero_->AllGatherParameters(absl::MakeSpan(model_->params(), total)));
        comm_s += Since(c2);
      }
      MLA_RETURN_IF_ERROR(device_->ParametersChanged(model_->params(), total));
    } else {
      ++skipped_;
      if (rank_ == 0)
        LOG(WARNING) << "step " << step_ << ": non-finite loss or gradient, step skipped ("
                     << skipped_ << " so far)";
    }
    ++step_;
    tokens_seen_ += shapes_.global_rows * T;
    const double dt = Since(t0);
    window_time += dt;
    window_comm += comm_s;
    ++window_steps;

    if (rank_ == 0 && (step_ % o_.log_interval == 0 || step_ == shapes_.steps)) {
      const double tok_s = window_steps * shapes_.global_rows * T / window_time;
      const double mfu = flops_per_token * tok_s / world_ / (peak_gflops_ * 1e9);
      const double elapsed = Since(start);
      const double eta = elapsed / (step_ - first_step) * (shapes_.steps - step_);
      // Above 100 % the peak, not the step, is wrong: say so beside the figure.
      const std::string peak_note =
          mfu > 1.0 ? absl::StrFormat(" | MFU above 100%%: the start-up peak (%.1f GFLOP/s per "
                                      "rank) was measured low", peak_gflops_)
                    : std::string();
      std::printf(
          "step %6lld/%lld | loss %.4f | lr %.3e | gnorm %.3f | %8.0f tok/s | MFU %5.1f%% | "
          "comm %4.1f%% | elapsed %s | ETA %s%s\n",
          static_cast<long long>(step_), static_cast<long long>(shapes_.steps), loss, lr,
          clip.norm, tok_s, 100 * mfu, 100 * window_comm / window_time,
          FormatDuration(elapsed).c_str(), FormatDuration(eta).c_str(), peak_note.c_str());
      std::fflush(stdout);
      Log(absl::StrFormat(
          "{\"step\": %d, \"loss\": %s, \"lr\": %s, \"grad_norm\": %s, \"tokens_per_s\": %s, "
          "\"mfu\": %s, \"comm_share\": %s, \"tokens_seen\": %d, \"skipped_steps\": %d, "
          "\"elapsed_s\": %.3f}",
          step_, json::Number("%.6f", loss), json::Number("%.6e", lr), json::Number("%.6f", clip.norm),
          json::Number("%.1f", tok_s), json::Number("%.4f", mfu),
          json::Number("%.4f", window_comm / window_time), tokens_seen_, skipped_, elapsed));
      window_time = window_comm = 0;
      window_steps = 0;
    }
    const bool last = step_ == shapes_.steps;
    if ((o_.eval_interval > 0 && step_ % o_.eval_interval == 0) || last) {
      MLA_ASSIGN_OR_RETURN(double val, Evaluate());
      if (rank_ == 0 && std::isfinite(val)) {
        std::printf("step %6lld | val_loss %.4f | val_ppl %.2f\n", static_cast<long long>(step_),
                    val, std::exp(val));
        std::fflush(stdout);
        Log(absl::StrFormat("{\"step\": %d, \"val_loss\": %.6f, \"val_ppl\": %s}", step_, val,
                            json::Number("%.4f", std::exp(val))));
      }
    }
    // One collective per step carries the stop signal and rank 0's output
    // failures, so every rank leaves the loop together.
    int64_t verdict[2] = {TakeStopSignal(), output_status_.ok() ? 0 : 1};
    MLA_RETURN_IF_ERROR(comm_->AllReduce(absl::MakeSpan(verdict, 2), ReduceOp::kMax));
    if (verdict[1] != 0)
      return rank_ == 0 ? output_status_ : absl::AbortedError("rank 0 could not write its outputs");
    const int64_t stop = verdict[0];
    if ((o_.ckpt_every > 0 && step_ % o_.ckpt_every == 0) || last || stop != 0) {
      MLA_RETURN_IF_ERROR(Save());
    }
    if (stop != 0) {
      if (rank_ == 0)
        std::printf("mla-train: stopped by signal %lld after step %lld; checkpoint written\n",
                    static_cast<long long>(stop), static_cast<long long>(step_));
      break;
    }
  }
  // A failure here is rank 0's alone; RunTraining agrees on it.
  if (!metrics_.has_value()) return absl::OkStatus();
  MLA_RETURN_IF_ERROR(output_status_);
  absl::Status closed = metrics_->Close();
  metrics_.reset();
  return closed;
}

}  // namespace

absl::Status RunTraining(const TrainOptions& options, Communicator* comm) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  MLA_RETURN_IF_ERROR(AgreeOnStatus(*comm, ValidateTrainOptions(options, comm->size())));
  absl::StatusOr<std::unique_ptr<TrainingDevice>> device =
      CreateTrainingDevice(options.device, options.precision, comm);
  // Every rank fails alike here (the CUDA device agrees internally).
  if (!device.ok()) return device.status();
  return RunTraining(options, comm, std::move(*device));
}

absl::Status RunTraining(const TrainOptions& options, Communicator* comm,
                         std::unique_ptr<TrainingDevice> device) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  MLA_RETURN_IF_ERROR(AgreeOnStatus(*comm, ValidateTrainOptions(options, comm->size())));
  // Rank 0 owns the run directory for the whole run; a second job on it is
  // refused before anything in it is read or written.
  std::optional<RunDirLock> lock;
  absl::Status locked = absl::OkStatus();
  if (comm->rank() == 0) {
    absl::StatusOr<RunDirLock> acquired = RunDirLock::Acquire(options.out_dir);
    if (acquired.ok()) lock.emplace(std::move(*acquired));
    locked = acquired.status();
  }
  MLA_RETURN_IF_ERROR(AgreeOnStatus(*comm, locked));
  Run run(options, comm, std::move(device));
  MLA_RETURN_IF_ERROR(AgreeOnStatus(*comm, run.Setup()));
  return AgreeOnStatus(*comm, run.Loop());
}

}  // namespace mla
