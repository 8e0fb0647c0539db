// mla-eval: evaluation of a trained checkpoint (or of a random-init model for
// benchmarking): validation loss split across MPI ranks, KV-cached batch
// generation to JSONL, and a report of KV-cache size, prefill/decode speed
// against the decode roofline (measured memory bandwidth and sgemm peak),
// automatic text metrics and a judge-ready JSONL for an external LLM grader.
//
// Runs as one process or under mpirun (only --task=loss uses more than one
// rank; the other tasks run on rank 0). A bad flag, file or checkpoint ends the
// program with one message on stderr and exit status 1 (every rank of an MPI
// job ends: AbortJob); problems with single prompts are reported per prompt in
// the output and do not stop the others.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/cli.h"
#include "base/utf8.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "checkpoint/commit.h"
#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "glog/logging.h"
#include "base/json.h"
#include "launch/mla_eval_metrics.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/memory_bandwidth.h"
#include "layers/cpu/peak_flops.h"
#include "layers/cpu/small_batch_linear.h"
#include "layers/precision.h"
#include "runtime/create_kernels.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/tokenizer.h"
#include "runtime/decode_cost.h"
#include "runtime/decoder.h"
#include "runtime/model_checkpoint.h"
#include "runtime/model_flags.h"
#include "runtime/random.h"

ABSL_FLAG(std::string, task, "",
          "What to do: loss (validation loss and perplexity over --val_shard, split across MPI "
          "ranks), generate (batch generation from --prompts to JSONL), report (KV-cache size, "
          "prefill/decode speed and, on the CPU, each decode cell's fraction of the roofline "
          "from the memory bandwidth and sgemm peak measured in the same run; text metrics, "
          "judge JSONL).");
ABSL_FLAG(std::string, checkpoint, "",
          "Checkpoint file, or a run directory (its `latest` checkpoint), or `auto` with "
          "--run_dir. The model config and tokenizer come from the checkpoint.");
ABSL_FLAG(std::string, run_dir, "", "Run directory for --checkpoint=auto.");
ABSL_FLAG(std::string, random_init_config, "",
          "Instead of a checkpoint, a random-init model for benchmarking (report task only): "
          "comma-separated key=value over the model flags' names (vocab_size, context_length, "
          "n_layer, d_model, n_head, attention, kv_rank, rope_dim, q_rank, latent_norm, "
          "mlp_ratio, tied_embeddings, rope_theta; also the aliases layers, heads, vocab, "
          "context, tied), applied over the model flags, e.g. "
          "attention=mha,n_layer=6,d_model=288,n_head=6,vocab_size=32000,context_length=256.");
ABSL_FLAG(std::string, val_shard, "", "Validation token shard for --task=loss.");
ABSL_FLAG(int, seq_len, 0, "Window length T for --task=loss (0 = the model's context).");
ABSL_FLAG(int, batch, 8, "Windows per forward pass for --task=loss.");
ABSL_FLAG(std::string, prompts, "",
          "JSONL prompts for generate/report: one object per line with \"prompt\" (string, "
          "required) and optional \"id\", \"max_new_tokens\", \"temperature\", \"top_k\", "
          "\"top_p\", \"seed\" overriding the flags. Blank lines are skipped.");
ABSL_FLAG(std::string, out, "",
          "Output file: JSONL (one line per prompt) for generate, one JSON object for loss and "
          "report. Empty: no file, the summary on stdout only.");
ABSL_FLAG(std::string, judge_out, "",
          "report: judge-ready JSONL for an external LLM grader (default: <out>.judge.jsonl when "
          "--out is set).");
ABSL_FLAG(bool, force, false,
          "Replace existing --out/--judge_out files (never an input of this command). Outputs "
          "are written beside their path and renamed onto it when complete.");
ABSL_FLAG(int, max_new_tokens, 0,
          "Token limit per generation, below the context; 0 = until EOS or the context is full.");
ABSL_FLAG(double, temperature, 0.0, "Sampling temperature; 0 = greedy.");
ABSL_FLAG(int, top_k, 0, "Sample from the k most likely tokens (0 = all).");
ABSL_FLAG(double, top_p, 1.0, "Nucleus sampling mass in (0, 1] (1 = off).");
ABSL_FLAG(int64_t, seed, 1,
          "Sampling seed; prompt i without its own \"seed\" uses seed + i, so results do not "
          "depend on batching.");
ABSL_FLAG(int, max_batch, 8, "Sequences decoded together (KV-cache slots).");
ABSL_FLAG(int, max_rows, 256, "Rows per prefill call (prompt chunk size).");
ABSL_FLAG(std::string, decode, "absorbed",
          "MLA decode: absorbed (W_uk/W_uv folded into query and output; the latent cache is "
          "never expanded) or naive (K and V expanded from the latents at every step).");
ABSL_FLAG(std::string, bench_batches, "1,8,32", "report: batch sizes for the speed table.");
ABSL_FLAG(std::string, bench_contexts, "",
          "report: context lengths for the speed table (default: 64 and the model's context).");
ABSL_FLAG(int, bench_steps, 32,
          "report: decode steps timed per cell; the cache grows from context − steps to context.");
ABSL_FLAG(int, bench_repeats, 2,
          "report: timed decodes per speed cell (the fastest counts); the prompts are "
          "prefilled once per cell and each repeat decodes again from the same cache length.");
ABSL_FLAG(double, bench_seconds, 0,
          "report: stop a cell's repeats early once its timed decodes have taken this many "
          "seconds in all (at least one always runs; 0 = run every repeat). Bounds the slow "
          "cells (naive MLA at long context and batch 32) without losing the fast ones' repeats.");
ABSL_FLAG(int64_t, init_seed, 1, "Seed of the random-init model.");
ABSL_FLAG(std::string, device, "cpu",
          "Where the model and the decoder run: cpu (oneDNN + OpenMP) or cuda (GPU r for "
          "node-local rank r under mpirun, as in training; the KV cache and every decoder buffer live there, logits come back once per "
          "step for sampling on the host).");
ABSL_FLAG(std::string, precision, "fp32",
          "Weights of the linear layers: fp32, or bf16 (--device=cpu only): a bf16 copy of "
          "every weight matrix is read by the linear layers, widened to fp32 in registers with "
          "fp32 accumulation (batches of more than 4 rows in groups of 4 over cache-sized panels "
          "of each matrix); "
          "embeddings, norms, biases and the KV cache stay fp32. Halves the weight bytes "
          "decoding reads per token.");
ABSL_FLAG(std::string, kv_dtype, "fp32",
          "Storage of the KV cache: fp32. (bf16 is not supported yet: the cache, and the "
          "report's KV bytes, are fp32 whatever --precision says.)");
ABSL_FLAG(int, threads, 0,
          "OpenMP threads (0 = OMP_NUM_THREADS or all cores). On a machine shared with other "
          "jobs, 1 avoids threads spinning at barriers while another is descheduled. More than "
          "the CPUs this process may run on are capped, with a warning.");

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The model under evaluation: from a checkpoint (with its tokenizer) or random.
struct EvalModel {
  ModelConfig config;
  std::unique_ptr<GptModel> model;
  std::optional<Tokenizer> tokenizer;
  std::string source;  // checkpoint path or "random-init"
  int64_t step = 0;
};

// The spellings --random_init_config took before its keys became the
// schema's names.
constexpr std::pair<absl::string_view, absl::string_view> kRandomInitAliases[] = {
    {"layers", "n_layer"}, {"heads", "n_head"}, {"vocab", "vocab_size"},
    {"context", "context_length"}, {"tied", "tied_embeddings"}};

absl::StatusOr<ModelConfig> ParseRandomInitConfig(const std::string& spec) {
  absl::StatusOr<ModelConfig> c =
      ParseModelConfigSpec(spec, ModelConfigFromFlags(), kRandomInitAliases);
  if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("--random_init_config: ", c.status().message()));
  return c;
}

absl::StatusOr<EvalModel> LoadEvalModel(Kernels* kernels) {
  EvalModel m;
  const std::string ckpt = absl::GetFlag(FLAGS_checkpoint);
  const std::string rnd = absl::GetFlag(FLAGS_random_init_config);
  if (!ckpt.empty() && !rnd.empty())
    return absl::InvalidArgumentError("give either --checkpoint or --random_init_config, not both");
  if (!rnd.empty()) {
    MLA_ASSIGN_OR_RETURN(m.config, ParseRandomInitConfig(rnd));
    MLA_ASSIGN_OR_RETURN(m.model, GptModel::Create(m.config, kernels));
    m.model->InitParameters(static_cast<uint64_t>(absl::GetFlag(FLAGS_init_seed)));
    m.source = "random-init";
    return m;
  }
  if (ckpt.empty())
    return absl::InvalidArgumentError("--checkpoint is required (or --random_init_config)");
  for (const ModelConfigField& f : ModelConfigFields())
    if (ModelFlagGiven(f.name))
      return absl::InvalidArgumentError(absl::StrCat(
          "--", f.name, ": the model config comes from the checkpoint (model flags shape a "
          "--random_init_config model only)"));
  MLA_ASSIGN_OR_RETURN(LoadedModel loaded,
                       LoadModelFromCheckpoint(ckpt, absl::GetFlag(FLAGS_run_dir), kernels));
  m.config = loaded.config;
  m.model = std::move(loaded.model);
  m.source = loaded.path;
  m.step = loaded.header.step;
  auto tok = Tokenizer::LoadFromBytes(std::move(loaded.tokenizer_model));
  if (!tok.ok())
    return absl::Status(tok.status().code(), absl::StrCat("checkpoint ", m.source,
                                                          ": tokenizer: ", tok.status().message()));
  if (tok->vocab_size() > m.config.vocab_size)
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", m.source, ": tokenizer vocabulary ", tok->vocab_size(),
                     " exceeds the model's ", m.config.vocab_size));
  m.tokenizer.emplace(std::move(*tok));
  return m;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomically(path, text);
}

// --judge_out, or its default beside --out.
std::string JudgeOutPath() {
  const std::string judge_out = absl::GetFlag(FLAGS_judge_out);
  const std::string out = absl::GetFlag(FLAGS_out);
  return judge_out.empty() && !out.empty() ? out + ".judge.jsonl" : judge_out;
}

// Refuses, before any work, outputs that are inputs of this command (same
// inode) or existing files without --force.
absl::Status CheckOutputs() {
  OutputRules rules;
  rules.overwrite = absl::GetFlag(FLAGS_force);
  for (const std::string& input : {absl::GetFlag(FLAGS_checkpoint), absl::GetFlag(FLAGS_run_dir),
                                   absl::GetFlag(FLAGS_prompts), absl::GetFlag(FLAGS_val_shard)})
    if (!input.empty()) rules.inputs.push_back(input);
  if (!absl::GetFlag(FLAGS_checkpoint).empty()) {
    absl::StatusOr<std::string> resolved =
        ckpt::ResolveCheckpoint(absl::GetFlag(FLAGS_checkpoint), absl::GetFlag(FLAGS_run_dir));
    if (resolved.ok()) rules.inputs.push_back(*resolved);
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) MLA_RETURN_IF_ERROR(CheckOutputTarget(out, rules, "--out"));
  const std::string judge_out = JudgeOutPath();
  if (absl::GetFlag(FLAGS_task) == "report" && !judge_out.empty()) {
    if (judge_out == out) return absl::InvalidArgumentError("--judge_out is the same file as --out");
    MLA_RETURN_IF_ERROR(CheckOutputTarget(judge_out, rules, "--judge_out"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- loss

absl::Status RunLoss(Communicator& comm, EvalModel& m) {
  const std::string shard = absl::GetFlag(FLAGS_val_shard);
  if (shard.empty()) return absl::InvalidArgumentError("--task=loss needs --val_shard");
  const int T = absl::GetFlag(FLAGS_seq_len) == 0 ? m.config.context_length
                                                   : absl::GetFlag(FLAGS_seq_len);
  if (T < 1 || T > m.config.context_length)
    return absl::InvalidArgumentError(absl::StrCat("--seq_len must be in [1, context ",
                                                   m.config.context_length, "], got ", T));
  const int rows = absl::GetFlag(FLAGS_batch);
  if (rows < 1) return absl::InvalidArgumentError("--batch must be >= 1");
  MLA_ASSIGN_OR_RETURN(ValidationIterator it,
                       ValidationIterator::Create(shard, T, rows, comm.rank(), comm.size()));
  if (it.shard_header().vocab_size > static_cast<uint32_t>(m.config.vocab_size))
    return absl::InvalidArgumentError(absl::StrCat(
        shard, ": shard vocabulary ", it.shard_header().vocab_size, " exceeds the model's ",
        m.config.vocab_size));
  const auto t0 = Clock::now();
  std::vector<int32_t> in(static_cast<size_t>(rows) * T), tg(in.size());
  m.model->Reserve(rows, T);
  // Σ over this rank's windows of each window's mean loss, and the window count.
  double sums[2] = {0.0, 0.0};
  for (int n; (n = it.NextBatch(in.data(), tg.data())) > 0;) {
    sums[0] += m.model->Forward(in.data(), tg.data(), n, T) * n;
    sums[1] += n;
  }
  MLA_RETURN_IF_ERROR(comm.AllReduce(absl::MakeSpan(sums, 2), ReduceOp::kSum));
  if (comm.rank() != 0) return absl::OkStatus();
  const double loss = sums[0] / sums[1];
  const double seconds = Since(t0);
  std::printf("mla-eval loss: %s (step %lld)\n  val shard %s: %.0f windows of %d tokens on %d "
              "rank(s), %lld tail tokens not covered\n  loss %.6f  perplexity %.4f  (%.1f s)\n",
              m.source.c_str(), static_cast<long long>(m.step), shard.c_str(), sums[1], T,
              comm.size(), static_cast<long long>(it.uncovered_targets()), loss, std::exp(loss),
              seconds);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty() && comm.rank() == 0) {
    const std::string j = absl::StrCat(
        "{\"task\":\"loss\",\"checkpoint\":", json::Quote(m.source), ",\"step\":", m.step,
        ",\"val_shard\":", json::Quote(shard), ",\"seq_len\":", T,
        ",\"windows\":", static_cast<int64_t>(sums[1]),
        ",\"tokens\":", static_cast<int64_t>(sums[1]) * T, ",\"ranks\":", comm.size(),
        ",\"loss\":", json::Number(loss), ",\"perplexity\":", json::Number(std::exp(loss)),
        ",\"seconds\":", json::Number(seconds), "}\n");
    MLA_RETURN_IF_ERROR(WriteText(out, j));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- prompts

struct PromptLine {
  int line = 0;
  std::string id;
  std::string text;
  absl::Status status;  // not OK: the line is reported, not generated
  GenerationRequest request;
};

SamplingParams FlagSampling(uint64_t seed) {
  SamplingParams s;
  s.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  s.top_k = absl::GetFlag(FLAGS_top_k);
  s.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  s.seed = seed;
  return s;
}

// 0 means "until the context is full": the context-full stop comes first.
int FlagTokenLimit(int context) {
  const int n = absl::GetFlag(FLAGS_max_new_tokens);
  return n == 0 ? context : n;
}

absl::Status ParsePromptObject(const json::Value& v, int context, PromptLine* p) {
  if (v.type != json::Value::Type::kObject)
    return absl::InvalidArgumentError("a prompt line must be a JSON object");
  auto integer = [](const json::Value& x, absl::string_view key, int64_t lo,
                    int64_t* out) -> absl::Status {
    if (x.type != json::Value::Type::kNumber || x.number != std::floor(x.number) ||
        x.number < static_cast<double>(lo) || x.number > 9.0e15)
      return absl::InvalidArgumentError(
          absl::StrCat("\"", key, "\" must be an integer >= ", lo));
    *out = static_cast<int64_t>(x.number);
    return absl::OkStatus();
  };
  bool have_prompt = false;
  for (const auto& [key, x] : v.object) {
    int64_t i = 0;
    if (key == "prompt") {
      if (x.type != json::Value::Type::kString)
        return absl::InvalidArgumentError("\"prompt\" must be a string");
      p->text = x.string;
      have_prompt = true;
    } else if (key == "id") {
      if (x.type == json::Value::Type::kString) p->id = x.string;
      else if (x.type == json::Value::Type::kNumber) p->id = json::Number(x.number);
      else return absl::InvalidArgumentError("\"id\" must be a string or a number");
    } else if (key == "max_new_tokens") {
      MLA_RETURN_IF_ERROR(integer(x, key, 1, &i));
      if (i >= context)
        return absl::InvalidArgumentError(
            absl::StrCat("max_new_tokens ", i, " is beyond the context of ", context));
      p->request.max_new_tokens = static_cast<int>(i);
    } else if (key == "top_k") {
      MLA_RETURN_IF_ERROR(integer(x, key, 0, &i));
      p->request.sampling.top_k = static_cast<int>(std::min<int64_t>(i, 1 << 30));
    } else if (key == "seed") {
      MLA_RETURN_IF_ERROR(integer(x, key, 0, &i));
      p->request.sampling.seed = static_cast<uint64_t>(i);
    } else if (key == "temperature" || key == "top_p") {
      if (x.type != json::Value::Type::kNumber)
        return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a number"));
      (key == "temperature" ? p->request.sampling.temperature : p->request.sampling.top_p) =
          static_cast<float>(x.number);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown key \"", key, "\""));
    }
  }
  if (!have_prompt) return absl::InvalidArgumentError("missing \"prompt\"");
  if (absl::StripAsciiWhitespace(p->text).empty())
    return absl::InvalidArgumentError("empty prompt");
  return ValidateSamplingParams(p->request.sampling);
}

// A prompt line is at most this long; a longer one is refused without being
// held in memory.
constexpr size_t kMaxPromptLineBytes = size_t{1} << 20;

// Reads one line (without its '\n') into `line`, keeping at most `max` bytes
// and setting `too_long` when the line had more. False at the end of input.
bool ReadBoundedLine(std::istream& in, size_t max, std::string* line, bool* too_long) {
  line->clear();
  *too_long = false;
  char buf[4096];
  bool any = false;
  while (in.getline(buf, sizeof(buf)) || in.gcount() > 0) {
    any = true;
    const size_t got = static_cast<size_t>(in.gcount());
    const bool full = in.fail();                   // the buffer filled before the newline
    const bool newline = !full && !in.eof();       // gcount counted the newline
    const size_t bytes = newline ? got - 1 : got;
    if (line->size() + bytes > max) {
      *too_long = true;
    } else {
      line->append(buf, bytes);
    }
    if (!full) return true;
    in.clear();
  }
  return any;
}

absl::StatusOr<std::vector<PromptLine>> ReadPrompts(const std::string& path,
                                                    const Tokenizer& tok, int context) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open prompts file ", path));
  std::vector<PromptLine> out;
  std::string line;
  bool too_long = false;
  for (int n = 1; ReadBoundedLine(f, kMaxPromptLineBytes, &line, &too_long); ++n) {
    if (n == 1 && absl::StartsWith(line, kUtf8Bom)) line.erase(0, kUtf8Bom.size());
    if (absl::StripAsciiWhitespace(line).empty() && !too_long) continue;
    PromptLine p;
    p.line = n;
    p.id = absl::StrCat(n);
    p.request.max_new_tokens = FlagTokenLimit(context);
    p.request.sampling = FlagSampling(static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)) + out.size());
    if (too_long) {
      p.status = absl::InvalidArgumentError(
          absl::StrCat("line longer than ", kMaxPromptLineBytes, " bytes"));
    } else if (const size_t bad = FirstInvalidUtf8(line); bad < line.size()) {
      p.status = absl::InvalidArgumentError(
          absl::StrCat("not valid UTF-8 at byte ", bad, " of the line"));
    } else {
      auto v = json::Parse(line);
      p.status = v.ok() ? ParsePromptObject(*v, context, &p) : v.status();
    }
    if (p.status.ok()) {
      const std::vector<int> ids = tok.Encode(p.text);
      p.request.prompt.assign(ids.begin(), ids.end());
      if (static_cast<int>(ids.size()) >= context)
        p.status = absl::InvalidArgumentError(absl::StrCat(
            "prompt of ", ids.size(), " tokens is longer than the context allows (", context - 1,
            " tokens, leaving room for one generated token)"));
    }
    if (!p.status.ok())
      p.status = absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": ", p.status.message()));
    out.push_back(std::move(p));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  return out;
}

struct GenerationRun {
  std::vector<PromptLine> prompts;
  std::vector<GenerationResult> results;  // same order; unset for rejected lines
  GenerationStats stats;
  double seconds = 0.0;
};

absl::StatusOr<DecoderOptions> FlagDecoderOptions(const ModelConfig& c) {
  DecoderOptions o;
  o.max_batch = absl::GetFlag(FLAGS_max_batch);
  o.max_rows = std::max(absl::GetFlag(FLAGS_max_rows), o.max_batch);
  MLA_ASSIGN_OR_RETURN(o.mode, ParseDecodeMode(absl::GetFlag(FLAGS_decode)));
  (void)c;
  return o;
}

absl::StatusOr<GenerationRun> RunGenerations(EvalModel& m, Kernels* kernels,
                                             std::vector<PromptLine> prompts) {
  GenerationRun run;
  run.prompts = std::move(prompts);
  MLA_ASSIGN_OR_RETURN(DecoderOptions o, FlagDecoderOptions(m.config));
  MLA_ASSIGN_OR_RETURN(auto decoder, Decoder::Create(*m.model, kernels, o));
  std::vector<GenerationRequest> reqs;
  std::vector<int> index;
  for (size_t i = 0; i < run.prompts.size(); ++i)
    if (run.prompts[i].status.ok()) {
      reqs.push_back(run.prompts[i].request);
      index.push_back(static_cast<int>(i));
    }
  const auto t0 = Clock::now();
  std::vector<GenerationResult> res = Generate(*decoder, reqs, m.tokenizer->eos_id(), &run.stats);
  run.seconds = Since(t0);
  run.results.resize(run.prompts.size());
  for (size_t k = 0; k < res.size(); ++k) {
    if (!res[k].status.ok())
      run.prompts[index[k]].status = absl::InvalidArgumentError(
          absl::StrCat("line ", run.prompts[index[k]].line, ": ", res[k].status.message()));
    run.results[index[k]] = std::move(res[k]);
  }
  return run;
}

std::string GenerationJsonl(const GenerationRun& run, const Tokenizer& tok) {
  std::string out;
  for (size_t i = 0; i < run.prompts.size(); ++i) {
    const PromptLine& p = run.prompts[i];
    if (!p.status.ok()) {
      absl::StrAppend(&out, "{\"id\":", json::Quote(p.id), ",\"line\":", p.line,
                      ",\"error\":", json::Quote(p.status.message()), "}\n");
      continue;
    }
    const GenerationResult& r = run.results[i];
    const std::vector<int> ids(r.tokens.begin(), r.tokens.end());
    absl::StrAppend(&out, "{\"id\":", json::Quote(p.id), ",\"line\":", p.line,
                    ",\"prompt\":", json::Quote(p.text), ",\"text\":", json::Quote(tok.Decode(ids)),
                    ",\"tokens\":[", absl::StrJoin(r.tokens, ","), "]",
                    ",\"prompt_tokens\":", p.request.prompt.size(),
                    ",\"generated_tokens\":", r.tokens.size(),
                    ",\"stop\":", json::Quote(StopReasonName(r.stop)),
                    ",\"seconds\":", json::Number(r.seconds), "}\n");
  }
  return out;
}

absl::Status CheckTokenLimit(const ModelConfig& c) {
  if (absl::GetFlag(FLAGS_max_new_tokens) < 0 ||
      absl::GetFlag(FLAGS_max_new_tokens) >= c.context_length)
    return absl::InvalidArgumentError(
        absl::StrCat("--max_new_tokens must be in [0, context ", c.context_length, "), got ",
                     absl::GetFlag(FLAGS_max_new_tokens)));
  return ValidateSamplingParams(FlagSampling(0));
}

absl::Status RunGenerate(EvalModel& m, Kernels* kernels) {
  if (!m.tokenizer) return absl::InvalidArgumentError("--task=generate needs a checkpoint");
  const std::string path = absl::GetFlag(FLAGS_prompts);
  if (path.empty()) return absl::InvalidArgumentError("--task=generate needs --prompts");
  MLA_RETURN_IF_ERROR(CheckTokenLimit(m.config));
  MLA_ASSIGN_OR_RETURN(auto prompts, ReadPrompts(path, *m.tokenizer, m.config.context_length));
  MLA_ASSIGN_OR_RETURN(GenerationRun run, RunGenerations(m, kernels, std::move(prompts)));
  int ok = 0;
  for (const PromptLine& p : run.prompts) {
    if (p.status.ok()) ++ok;
    else std::fprintf(stderr, "mla-eval: skipped %s\n", std::string(p.status.message()).c_str());
  }
  std::printf("mla-eval generate: %s\n  %d of %zu prompts generated, %lld tokens in %.2f s; "
              "prefill %.0f tokens/s, decode %.1f tokens/s (batch up to %d, %s)\n",
              m.source.c_str(), ok, run.prompts.size(),
              static_cast<long long>(run.stats.decode_tokens + ok), run.seconds,
              run.stats.prefill_tokens / std::max(run.stats.prefill_seconds, 1e-9),
              run.stats.decode_tokens / std::max(run.stats.decode_seconds, 1e-9),
              absl::GetFlag(FLAGS_max_batch), absl::GetFlag(FLAGS_decode).c_str());
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) MLA_RETURN_IF_ERROR(WriteText(out, GenerationJsonl(run, *m.tokenizer)));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- report

constexpr const char* kJudgeInstructions =
    "You are grading a short story written by a small language model trained on simple "
    "stories for young children. The model was given the opening below and wrote the rest. "
    "Read the whole story, then score the model's continuation on three criteria, each an "
    "integer from 1 (very poor) to 10 (excellent):\n"
    "- grammar: spelling, punctuation and well-formed sentences;\n"
    "- creativity: an interesting, original plot, imagery or dialogue rather than a generic "
    "or repetitive one;\n"
    "- consistency: the continuation follows from the opening, keeps its characters, places "
    "and objects, and makes sense from beginning to end.\n"
    "A story that stops mid-sentence because of a length limit should not be penalised for "
    "that alone. Reply with one JSON object only, for example "
    "{\"grammar\": 7, \"creativity\": 5, \"consistency\": 6}.\n";

const char* kDefaultOpenings[] = {
    "Once upon a time, there was a little girl named Lily.",
    "Tom and his dog went to the park.",
    "One day, a small bird found a shiny stone.",
    "Sara wanted to bake a cake for her mom.",
    "The sun was hot and the sky was blue.",
    "Ben had a red ball that he loved very much.",
    "In a big forest, there lived a kind old bear.",
    "Mia and Max found a box under the bed.",
};

struct SpeedCell {
  DecodeMode mode = DecodeMode::kAbsorbed;
  int batch = 0, context = 0;
  double prefill_tps = 0.0, decode_tps = 0.0;
  int repeats = 0;  // timed decodes run (--bench_repeats, fewer under --bench_seconds)
};

// The machine side of the decode roofline, measured in the report's run at
// its thread count (docs/benchmarks.md, "Decode roofline").
struct MachineRoofline {
  ReadBandwidth bandwidth;
  double sgemm_peak_gflops = 0;
};

// The linear layers' weights are read at --precision (the embeddings, norms
// and biases, read once per row, are counted at the same width); the KV cache
// is fp32.
constexpr int kKvBytesPerValue = 4;
int WeightBytesPerValue() { return absl::GetFlag(FLAGS_precision) == "bf16" ? 2 : 4; }

// A speed cell against the roofline: the timed steps attend to context −
// steps + 1 … context positions, so the cache read is taken at their mean.
struct CellRoofline {
  DecodeCost cost;
  DecodeRoofline roofline;
  double fraction = 0;  // decode tok/s ÷ roofline tok/s
  // One step's bytes (the batch's): when they fit the last-level cache the
  // step may be served from it, and the memory roofline is no upper bound.
  double step_bytes = 0;
  bool fits_llc = false;
};

CellRoofline RateCell(const ModelConfig& c, const SpeedCell& s, const MachineRoofline& m) {
  const double mean_context = s.context - (absl::GetFlag(FLAGS_bench_steps) - 1) / 2.0;
  CellRoofline r;
  r.cost = ComputeDecodeCost(c, s.mode, s.batch, mean_context, WeightBytesPerValue(),
                             kKvBytesPerValue);
  r.roofline = ComputeDecodeRoofline(r.cost, m.bandwidth.gb_per_s, m.sgemm_peak_gflops);
  r.fraction = s.decode_tps / r.roofline.tokens_per_s;
  r.step_bytes = r.cost.bytes_per_token * s.batch;
  r.fits_llc = r.step_bytes <= static_cast<double>(m.bandwidth.llc_bytes);
  return r;
}

absl::StatusOr<std::vector<int>> IntList(const std::string& flag, const std::string& value) {
  std::vector<int> out;
  for (absl::string_view s : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    int v;
    if (!absl::SimpleAtoi(s, &v) || v < 1)
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", s, "' is not a positive integer"));
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty"));
  return out;
}

// Prefill: `batch` prompts of context − steps random tokens, once per cell;
// decode: `steps` steps with all `batch` sequences, the cache growing to
// `context`, repeated from the prefilled length (the cache is cut back to it,
// which leaves exactly the prefill's rows: decoding only appends).
absl::StatusOr<std::vector<SpeedCell>> MeasureSpeed(EvalModel& m, Kernels* kernels,
                                                    DecodeMode mode) {
  MLA_ASSIGN_OR_RETURN(std::vector<int> batches,
                       IntList("bench_batches", absl::GetFlag(FLAGS_bench_batches)));
  std::string ctx_flag = absl::GetFlag(FLAGS_bench_contexts);
  if (ctx_flag.empty())
    ctx_flag = absl::StrCat(std::min(64, m.config.context_length), ",", m.config.context_length);
  MLA_ASSIGN_OR_RETURN(std::vector<int> contexts, IntList("bench_contexts", ctx_flag));
  const int steps = absl::GetFlag(FLAGS_bench_steps);
  if (steps < 1 || absl::GetFlag(FLAGS_bench_repeats) < 1)
    return absl::InvalidArgumentError(absl::StrCat(
        "--bench_steps (", steps, ") and --bench_repeats (", absl::GetFlag(FLAGS_bench_repeats),
        ") must be ≥ 1"));
  if (!(absl::GetFlag(FLAGS_bench_seconds) >= 0))
    return absl::InvalidArgumentError(absl::StrCat(
        "--bench_seconds: ", absl::GetFlag(FLAGS_bench_seconds), " must be ≥ 0 (0 = off)"));
  for (int c : contexts)
    if (c > m.config.context_length || c <= steps)
      return absl::InvalidArgumentError(absl::StrCat(
          "--bench_contexts: ", c, " must be in (bench_steps ", steps, ", context ",
          m.config.context_length, "]"));
  DecoderOptions o;
  o.max_batch = *std::max_element(batches.begin(), batches.end());
  o.max_len = *std::max_element(contexts.begin(), contexts.end());
  o.max_rows = std::max(absl::GetFlag(FLAGS_max_rows), o.max_batch);
  o.mode = mode;
  MLA_ASSIGN_OR_RETURN(auto dec, Decoder::Create(*m.model, kernels, o));
  const int V = m.config.vocab_size;
  std::vector<int32_t> tokens(static_cast<size_t>(o.max_batch) * o.max_len);
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<int32_t>(UniformAt(99, 1, i) * V) % V;
  std::vector<SpeedCell> cells;
  std::vector<DecodeSegment> segs;
  for (int c : contexts)
    for (int b : batches) {
      SpeedCell cell{mode, b, c, 0.0, 0.0};
      const int plen = c - steps;
      for (int s = 0; s < b; ++s) dec->cache().Clear(s);
      {
        auto t0 = Clock::now();
        std::vector<int> done(b, 0);
        while (true) {  // prefill in chunks of at most max_rows rows
          segs.clear();
          int rows = 0;
          for (int s = 0; s < b && rows < o.max_rows; ++s) {
            const int n = std::min(plen - done[s], o.max_rows - rows);
            if (n <= 0) continue;
            segs.push_back({s, n, tokens.data() + static_cast<size_t>(s) * o.max_len + done[s]});
            done[s] += n;
            rows += n;
          }
          if (segs.empty()) break;
          dec->Forward(segs, false);
        }
        cell.prefill_tps = static_cast<double>(b) * plen / Since(t0);
      }
      double decoding = 0;
      for (int rep = 0; rep < absl::GetFlag(FLAGS_bench_repeats); ++rep) {
        if (rep > 0 && absl::GetFlag(FLAGS_bench_seconds) > 0 &&
            decoding >= absl::GetFlag(FLAGS_bench_seconds))
          break;
        for (int s = 0; s < b; ++s) dec->cache().set_length(s, plen);
        const auto t0 = Clock::now();
        for (int t = 0; t < steps; ++t) {
          segs.clear();
          for (int s = 0; s < b; ++s)
            segs.push_back({s, 1, tokens.data() + static_cast<size_t>(s) * o.max_len + plen + t});
          dec->Forward(segs, false);
        }
        const double decode = Since(t0);
        decoding += decode;
        ++cell.repeats;
        cell.decode_tps = std::max(cell.decode_tps, static_cast<double>(b) * steps / decode);
      }
      LOG(INFO) << "speed " << DecodeModeName(cell.mode) << " batch " << b << " context " << c << ": prefill "
                << cell.prefill_tps << " tok/s, decode " << cell.decode_tps << " tok/s";
      cells.push_back(cell);
    }
  return cells;
}

absl::Status RunReport(EvalModel& m, Kernels* kernels) {
  const ModelConfig& c = m.config;
  MLA_RETURN_IF_ERROR(CheckTokenLimit(c));
  // KV cache: the decoder's cache layout, checked against the model cost.
  const KvCacheLayout kv = KvCacheLayoutFor(c);
  const ModelCost cost = ComputeModelCost(c);
  ModelConfig mha = c;
  mha.attention = AttentionKind::kMha;
  const ModelCost mha_cost = ComputeModelCost(mha);
  const int64_t per_layer = kv.values_per_token_per_layer();
  const int64_t total = per_layer * c.n_layer;
  if (total != cost.kv_cache_values_per_token)
    return absl::InternalError(absl::StrCat("KV cache holds ", total,
                                            " values per token but the model cost says ",
                                            cost.kv_cache_values_per_token));
  const double ratio = static_cast<double>(total) / mha_cost.kv_cache_values_per_token;

  std::vector<SpeedCell> speed;
  MLA_ASSIGN_OR_RETURN(const DecodeMode mode, ParseDecodeMode(absl::GetFlag(FLAGS_decode)));
  if (c.is_mla()) {
    for (DecodeMode md : {DecodeMode::kAbsorbed, DecodeMode::kNaive}) {
      MLA_ASSIGN_OR_RETURN(auto cells, MeasureSpeed(m, kernels, md));
      speed.insert(speed.end(), cells.begin(), cells.end());
    }
  } else {
    MLA_ASSIGN_OR_RETURN(speed, MeasureSpeed(m, kernels, mode));
  }
  // The roofline's machine side, after the speed cells so its buffers do not
  // crowd them; the CPU only (a GPU's bandwidth is not measured here).
  std::optional<MachineRoofline> machine;
  if (kernels->is_host()) {
    machine.emplace();
    machine->bandwidth = MeasureReadBandwidth(5);
    machine->sgemm_peak_gflops = MeasureSgemmPeakGflops(3);
  }

  // Generations for text metrics and the judge file (checkpoint models only).
  std::optional<TextMetrics> metrics;
  std::string judge;
  std::optional<GenerationRun> run;
  if (m.tokenizer) {
    std::vector<PromptLine> prompts;
    if (!absl::GetFlag(FLAGS_prompts).empty()) {
      MLA_ASSIGN_OR_RETURN(prompts,
                           ReadPrompts(absl::GetFlag(FLAGS_prompts), *m.tokenizer, c.context_length));
    } else {
      int i = 0;
      for (const char* text : kDefaultOpenings) {
        PromptLine p;
        p.line = ++i;
        p.id = absl::StrCat("default-", i);
        p.text = text;
        const std::vector<int> ids = m.tokenizer->Encode(text);
        p.request.prompt.assign(ids.begin(), ids.end());
        p.request.max_new_tokens = FlagTokenLimit(c.context_length);
        p.request.sampling = FlagSampling(static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)) + i - 1);
        if (static_cast<int>(ids.size()) >= c.context_length)
          p.status = absl::InvalidArgumentError("default opening longer than the context");
        prompts.push_back(std::move(p));
      }
    }
    MLA_ASSIGN_OR_RETURN(run, RunGenerations(m, kernels, std::move(prompts)));
    std::vector<GenerationText> texts;
    for (size_t i = 0; i < run->prompts.size(); ++i) {
      const PromptLine& p = run->prompts[i];
      if (!p.status.ok()) continue;
      const GenerationResult& r = run->results[i];
      const std::string text = m.tokenizer->Decode(std::vector<int>(r.tokens.begin(), r.tokens.end()));
      texts.push_back({text, static_cast<int64_t>(r.tokens.size()), r.stop == StopReason::kEos});
      absl::StrAppend(&judge, "{\"id\":", json::Quote(p.id), ",\"model\":", json::Quote(m.source),
                      ",\"prompt\":", json::Quote(p.text), ",\"completion\":", json::Quote(text),
                      ",\"story\":", json::Quote(absl::StrCat(p.text, " ", text)),
                      ",\"rubric\":{\"grammar\":\"1-10\",\"creativity\":\"1-10\","
                      "\"consistency\":\"1-10\"},\"grader_prompt\":",
                      json::Quote(absl::StrCat(kJudgeInstructions, "\nOpening: ", p.text,
                                               "\n\nStory: ", p.text, " ", text, "\n")),
                      "}\n");
    }
    metrics = ComputeTextMetrics(texts);
  }

  // Summary on stdout.
  std::printf("mla-eval report: %s\n  %s  layers=%d d_model=%d heads=%d kv_rank=%d rope_dim=%d "
              "context=%d vocab=%d  params=%lld  threads=%d  device=%s\n",
              m.source.c_str(), std::string(AttentionKindName(c.attention)).c_str(), c.n_layer,
              c.d_model, c.n_head, c.kv_rank, c.rope_dim, c.context_length, c.vocab_size,
              static_cast<long long>(cost.parameters), omp_get_max_threads(),
              absl::GetFlag(FLAGS_device).c_str());
  std::printf("  KV cache per token: %lld values/layer, %lld values; fp32 %lld B/layer, %lld B; "
              "bf16 %lld B/layer, %lld B\n  vs MHA of the same size (%lld B fp32): %.1f%% "
              "(reduction %.1f%%)\n",
              static_cast<long long>(per_layer), static_cast<long long>(total),
              static_cast<long long>(per_layer * 4), static_cast<long long>(total * 4),
              static_cast<long long>(per_layer * 2), static_cast<long long>(total * 2),
              static_cast<long long>(mha_cost.kv_cache_bytes_per_token(4)), 100 * ratio,
              100 * (1 - ratio));
  if (machine)
    std::printf("  roofline: read bandwidth %.1f GB/s (streaming sum over %.0f MiB, last-level "
                "cache %.0f MiB, best of 5), sgemm peak %.1f GFLOP/s, %d threads; weights %s, KV "
                "cache fp32\n",
                machine->bandwidth.gb_per_s, machine->bandwidth.buffer_bytes / 1048576.0,
                machine->bandwidth.llc_bytes / 1048576.0, machine->sgemm_peak_gflops,
                machine->bandwidth.threads, WeightBytesPerValue() == 2 ? "bf16" : "fp32");
  else
    std::printf("  roofline: not measured on device=%s (CPU only)\n",
                absl::GetFlag(FLAGS_device).c_str());
  std::printf("  %-9s %6s %8s %14s %14s %12s %14s %8s %9s\n", "decode", "batch", "context",
              "prefill tok/s", "decode tok/s", "kB/token", "roofline tok/s", "bound", "fraction");
  for (const SpeedCell& s : speed) {
    std::printf("  %-9s %6d %8d %14.0f %14.1f", std::string(DecodeModeName(s.mode)).c_str(),
                s.batch, s.context, s.prefill_tps, s.decode_tps);
    if (machine) {
      const CellRoofline r = RateCell(c, s, *machine);
      std::printf(" %12.1f %14.1f %8s %8.1f%%%s", r.cost.bytes_per_token / 1e3,
                  r.roofline.tokens_per_s, r.roofline.compute_bound ? "compute" : "memory",
                  100 * r.fraction, r.fits_llc ? "  (step fits the last-level cache)" : "");
    }
    std::printf("\n");
  }
  if (metrics)
    std::printf("  text (%lld generations): distinct-1 %.3f distinct-2 %.3f repetition %.3f "
                "mean %.1f words / %.1f tokens, ended at EOS %.0f%%\n",
                static_cast<long long>(metrics->generations), metrics->distinct_1,
                metrics->distinct_2, metrics->repetition_rate, metrics->mean_words,
                metrics->mean_tokens, 100 * metrics->eos_share);
  else
    std::printf("  text metrics: none (a random-init model has no tokenizer)\n");

  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string judge_out = JudgeOutPath();
  if (!out.empty()) {
    std::vector<std::string> cells;
    for (const SpeedCell& s : speed) {
      std::string roof = "null";
      if (machine) {
        const CellRoofline r = RateCell(c, s, *machine);
        roof = absl::StrCat(
            "{\"weight_bytes_per_token\":", json::Number(r.cost.weight_bytes_per_token),
            ",\"kv_bytes_per_token\":", json::Number(r.cost.kv_bytes_per_token),
            ",\"bytes_per_token\":", json::Number(r.cost.bytes_per_token),
            ",\"flops_per_token\":", json::Number(r.cost.flops_per_token),
            ",\"tokens_per_s\":", json::Number(r.roofline.tokens_per_s),
            ",\"bound\":", json::Quote(r.roofline.compute_bound ? "compute" : "memory"),
            ",\"fraction\":", json::Number(r.fraction),
            ",\"step_bytes\":", json::Number(r.step_bytes),
            ",\"fits_llc\":", r.fits_llc ? "true" : "false", "}");
      }
      cells.push_back(absl::StrCat(
          "{\"decode\":", json::Quote(DecodeModeName(s.mode)), ",\"batch\":", s.batch,
          ",\"context\":", s.context, ",\"prefill_tokens_per_s\":", json::Number(s.prefill_tps),
          ",\"decode_tokens_per_s\":", json::Number(s.decode_tps), ",\"repeats\":", s.repeats,
          ",\"roofline\":", roof, "}"));
    }
    std::string machine_json = "null";
    if (machine)
      machine_json = absl::StrCat(
          "{\"read_bandwidth_gb_per_s\":", json::Number(machine->bandwidth.gb_per_s),
          ",\"bandwidth_buffer_bytes\":", machine->bandwidth.buffer_bytes,
          ",\"llc_bytes\":", machine->bandwidth.llc_bytes,
          ",\"sgemm_peak_gflops\":", json::Number(machine->sgemm_peak_gflops),
          ",\"threads\":", machine->bandwidth.threads,
          ",\"weight_bytes_per_value\":", WeightBytesPerValue(),
          ",\"kv_bytes_per_value\":", kKvBytesPerValue,
          ",\"bench_steps\":", absl::GetFlag(FLAGS_bench_steps),
          ",\"bench_seconds\":", json::Number(absl::GetFlag(FLAGS_bench_seconds)), "}");
    std::string text_json = "null";
    if (metrics)
      text_json = absl::StrCat(
          "{\"generations\":", metrics->generations, ",\"distinct_1\":",
          json::Number(metrics->distinct_1), ",\"distinct_2\":", json::Number(metrics->distinct_2),
          ",\"repetition_rate\":", json::Number(metrics->repetition_rate),
          ",\"mean_words\":", json::Number(metrics->mean_words),
          ",\"mean_tokens\":", json::Number(metrics->mean_tokens),
          ",\"eos_share\":", json::Number(metrics->eos_share), "}");
    const std::string j = absl::StrCat(
        "{\"task\":\"report\",\"model\":", json::Quote(m.source), ",\"step\":", m.step,
        ",\"attention\":", json::Quote(AttentionKindName(c.attention)),
        ",\"parameters\":", cost.parameters, ",\"context_length\":", c.context_length,
        ",\"threads\":", omp_get_max_threads(),
        ",\"device\":", json::Quote(absl::GetFlag(FLAGS_device)),
        ",\"kv_cache\":{\"values_per_token_per_layer\":", per_layer,
        ",\"values_per_token\":", total,
        ",\"bytes_per_token_per_layer_fp32\":", per_layer * 4,
        ",\"bytes_per_token_per_layer_bf16\":", per_layer * 2,
        ",\"bytes_per_token_fp32\":", total * 4, ",\"bytes_per_token_bf16\":", total * 2,
        ",\"mha_bytes_per_token_fp32\":", mha_cost.kv_cache_bytes_per_token(4),
        ",\"mha_bytes_per_token_bf16\":", mha_cost.kv_cache_bytes_per_token(2),
        ",\"ratio_to_mha\":", json::Number(ratio), ",\"reduction_vs_mha\":",
        json::Number(1 - ratio), "},\"roofline\":", machine_json, ",\"speed\":[",
        absl::StrJoin(cells, ","),
        "],\"text_metrics\":", text_json,
        ",\"judge_file\":", metrics ? json::Quote(judge_out) : std::string("null"), "}\n");
    MLA_RETURN_IF_ERROR(WriteText(out, j));
  }
  if (metrics && !judge_out.empty()) MLA_RETURN_IF_ERROR(WriteText(judge_out, judge));
  return absl::OkStatus();
}

absl::Status Run(Communicator& comm) {
  const std::string task = absl::GetFlag(FLAGS_task);
  if (task != "loss" && task != "generate" && task != "report")
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --task '", task, "' (expected loss, generate or report)"));
  if (!absl::GetFlag(FLAGS_random_init_config).empty() && task != "report")
    return absl::InvalidArgumentError("--random_init_config is for --task=report only");
  if (absl::GetFlag(FLAGS_threads) < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  if (absl::GetFlag(FLAGS_threads) > 0)
    omp_set_num_threads(CapThreads(absl::GetFlag(FLAGS_threads), "mla-eval"));
  MLA_RETURN_IF_ERROR(CheckOutputs());
  MLA_ASSIGN_OR_RETURN(const Precision precision, ParsePrecision(absl::GetFlag(FLAGS_precision)));
  if (absl::GetFlag(FLAGS_kv_dtype) == "bf16")
    return absl::UnimplementedError(
        "--kv_dtype=bf16 is not supported yet (the KV cache is stored in fp32)");
  if (absl::GetFlag(FLAGS_kv_dtype) != "fp32")
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv_dtype=", absl::GetFlag(FLAGS_kv_dtype), ": expected fp32 (bf16: not supported yet)"));
  if (precision == Precision::kBf16 && absl::GetFlag(FLAGS_device) != "cpu")
    return absl::UnimplementedError(absl::StrCat("--precision=bf16 is not supported yet on --device=",
                                                 absl::GetFlag(FLAGS_device), " (cpu only)"));
  // The model, the KV cache and the decoder all live in the kernels' memory;
  // rank r of a node runs on its node-local device r, as in training.
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<Kernels> owned,
                       CreateKernels(absl::GetFlag(FLAGS_device), Precision::kFp32, comm));
  Kernels* kernels = owned.get();
  MLA_ASSIGN_OR_RETURN(EvalModel m, LoadEvalModel(kernels));
  if (precision == Precision::kBf16) {
    auto* cpu = dynamic_cast<CpuKernels*>(kernels);
    CHECK(cpu != nullptr) << "--device=cpu without CPU kernels";
    cpu->UseBf16Weights(m.model->params(), m.model->num_params());
    if (comm.rank() == 0)
      std::fprintf(stderr, "mla-eval: bf16 weights (%.1f MiB copy of the fp32 parameters), %s kernels\n",
                  m.model->num_params() * 2.0 / (1 << 20), SimdIsaName(BestSimdIsa()));
  }
  if (task == "loss") return RunLoss(comm, m);
  if (comm.rank() != 0) return absl::OkStatus();  // generation runs on rank 0
  if (task == "generate") return RunGenerate(m, kernels);
  return RunReport(m, kernels);
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(
      "Evaluates a checkpoint: validation loss, KV-cached generation, KV-cache/speed report.\n"
      "  mla-eval --task=loss --checkpoint=RUN_DIR --val_shard=val.bin [--out=loss.json]\n"
      "  mpirun -np 4 mla-eval --task=loss ...        (windows split across ranks)\n"
      "  mla-eval --task=generate --checkpoint=CKPT --prompts=prompts.jsonl --out=gen.jsonl\n"
      "  mla-eval --task=report --checkpoint=CKPT --out=report.json   (+ report.json.judge.jsonl)\n"
      "  mla-eval --task=report --random_init_config=attention=mha,n_layer=6,d_model=288,"
      "n_head=6,vocab_size=32000,context_length=256\n"
      "  add --device=cuda to run the model, KV cache and decoder on the GPU\n"
      "  add --precision=bf16 to read bf16 weights (cpu)");
  if (absl::Status s = mla::CheckFlagfiles(argc, argv); !s.ok()) {
    std::fprintf(stderr, "mla-eval: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (absl::Status s = mla::CheckNoStrayArguments(absl::ParseCommandLine(argc, argv)); !s.ok()) {
    std::fprintf(stderr, "mla-eval: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  google::InitGoogleLogging(argv[0]);
  std::unique_ptr<mla::MpiSession> session;
  if (mla::LaunchedUnderMpi()) {
    auto s = mla::MpiSession::Init(&argc, &argv);
    if (!s.ok()) {
      std::fprintf(stderr, "mla-eval: %s\n", std::string(s.status().message()).c_str());
      return 1;
    }
    session = std::move(*s);
  }
  auto comm = mla::CreateCommunicator();
  if (!comm.ok()) {
    std::fprintf(stderr, "mla-eval: %s\n", std::string(comm.status().message()).c_str());
    return 1;
  }
  const absl::Status st = mla::Run(**comm);
  if (!st.ok()) {
    if ((*comm)->size() > 1) mla::AbortJob(st);
    std::fprintf(stderr, "mla-eval: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}
