// The mla-eval binary on the fixture written by mla_eval_fixture.cc (a
// random-weight mla_rope checkpoint with a trained tokenizer, a validation
// shard and a prompts file with good and bad lines).
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/utf8.h"
#include "gtest/gtest.h"
#include "base/json.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/data/token_shard.h"
#include "runtime/model_checkpoint.h"

namespace mla {
namespace {

const std::string kDir = MLA_EVAL_FIXTURE_DIR;
const std::string kCkpt = kDir + "/run";
const std::string kOut = kDir + "/out";

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr
};

Result RunCommand(const std::string& cmd) {
  Result r;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// --force: the fixture directory outlives a test run, so a rerun replaces its outputs.
Result Eval(const std::string& args) { return RunCommand(absl::StrCat(MLA_EVAL, " --force ", args)); }

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<json::Value> ReadJsonl(const std::string& path) {
  std::vector<json::Value> out;
  for (absl::string_view line : absl::StrSplit(ReadAll(path), '\n', absl::SkipEmpty())) {
    auto v = json::Parse(line);
    EXPECT_TRUE(v.ok()) << v.status();
    if (v.ok()) out.push_back(*v);
  }
  return out;
}

double NumberAt(const json::Value& v, const std::string& key) {
  const json::Value* x = v.Find(key);
  EXPECT_NE(x, nullptr) << key;
  return x == nullptr ? NAN : x->number;
}

// The mean loss over every full window of the shard, each window run alone
// through GptModel::Forward — windows cut here from the raw tokens.
double DirectLoss(int T) {
  CpuKernels kernels;
  auto loaded = LoadModelFromCheckpoint(kCkpt, "", &kernels);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  auto shard = TokenShard::Open(kDir + "/val.bin");
  EXPECT_TRUE(shard.ok()) << shard.status();
  const auto tok = shard->tokens();
  const int64_t windows = (static_cast<int64_t>(tok.size()) - 1) / T;
  double sum = 0.0;
  std::vector<int32_t> in(T), tg(T);
  for (int64_t w = 0; w < windows; ++w) {
    for (int t = 0; t < T; ++t) {
      in[t] = tok[w * T + t];
      tg[t] = tok[w * T + t + 1];
    }
    sum += loaded->model->Forward(in.data(), tg.data(), 1, T);
  }
  return sum / windows;
}

// Outputs are checked before any work: never an input of the command (the
// checkpoint the run directory resolves to here), never an existing file
// without --force.
TEST(MlaEvalTest, OutputOntoTheCheckpointItReadsIsRefusedEvenWithForce) {
  const std::string ckpt = kCkpt + "/" + ReadAll(kCkpt + "/latest");
  const std::string before = ReadAll(ckpt);
  const Result r = Eval(absl::StrCat("--task=loss --checkpoint=", kCkpt, " --val_shard=", kDir,
                                     "/val.bin --out=", ckpt));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("is the input"), std::string::npos) << r.output;
  EXPECT_EQ(ReadAll(ckpt), before);
}

TEST(MlaEvalTest, ExistingOutputIsKeptWithoutForce) {
  const std::string out = kOut + ".existing.json";
  std::ofstream(out) << "keep";
  const Result r = RunCommand(absl::StrCat(MLA_EVAL, " --task=loss --checkpoint=", kCkpt,
                                           " --val_shard=", kDir, "/val.bin --out=", out));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("exists; pass --force"), std::string::npos) << r.output;
  EXPECT_EQ(ReadAll(out), "keep");
}

TEST(MlaEvalTest, LossIsTheMeanOverAllValidationWindows) {
  const Result r = Eval(absl::StrCat("--task=loss --checkpoint=", kCkpt, " --val_shard=", kDir,
                                     "/val.bin --seq_len=32 --batch=3 --out=", kOut, ".loss.json"));
  ASSERT_EQ(r.code, 0) << r.output;
  auto v = json::Parse(ReadAll(kOut + ".loss.json"));
  ASSERT_TRUE(v.ok()) << v.status();
  const double want = DirectLoss(32);
  // Both sides sum float32 row losses of the same windows; batching changes
  // only the order of float work inside a row, ~1e-6 relative.
  EXPECT_NEAR(NumberAt(*v, "loss"), want, 1e-5 * want);
  EXPECT_NEAR(NumberAt(*v, "perplexity"), std::exp(NumberAt(*v, "loss")),
              1e-9 * NumberAt(*v, "perplexity"));
  EXPECT_NE(r.output.find("perplexity"), std::string::npos);
}

TEST(MlaEvalTest, LossOnTwoRanksEqualsOneRank) {
  const std::string args = absl::StrCat("--task=loss --checkpoint=", kCkpt, " --val_shard=", kDir,
                                        "/val.bin --seq_len=16 --batch=4 --out=");
  const Result one = Eval(args + kOut + ".loss1.json");
  ASSERT_EQ(one.code, 0) << one.output;
  const Result two = RunCommand(absl::StrCat(MLA_MPIEXEC, " -np 2 ", MLA_EVAL, " --force ", args, kOut,
                                             ".loss2.json"));
  ASSERT_EQ(two.code, 0) << two.output;
  auto a = json::Parse(ReadAll(kOut + ".loss1.json"));
  auto b = json::Parse(ReadAll(kOut + ".loss2.json"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(NumberAt(*b, "ranks"), 2);
  EXPECT_EQ(NumberAt(*a, "windows"), NumberAt(*b, "windows"));
  // The same per-window losses summed in another grouping: double sums of
  // float values, equal to ~1e-12 relative.
  EXPECT_NEAR(NumberAt(*a, "loss"), NumberAt(*b, "loss"), 1e-9 * NumberAt(*a, "loss"));
}

TEST(MlaEvalTest, GenerateWritesEveryPromptAndReportsBadLinesAlone) {
  const Result r = Eval(absl::StrCat("--task=generate --checkpoint=", kCkpt, " --prompts=", kDir,
                                     "/prompts.jsonl --max_new_tokens=20 --max_batch=2 --out=",
                                     kOut, ".gen.jsonl"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto lines = ReadJsonl(kOut + ".gen.jsonl");
  ASSERT_EQ(lines.size(), 8u);  // the blank line is skipped
  const std::vector<bool> good = {true, true, false, false, false, false, false, true};
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(i);
    if (good[i]) {
      ASSERT_EQ(lines[i].Find("error"), nullptr);
      const json::Value* toks = lines[i].Find("tokens");
      ASSERT_NE(toks, nullptr);
      EXPECT_EQ(static_cast<double>(toks->array.size()), NumberAt(lines[i], "generated_tokens"));
      EXPECT_NE(lines[i].Find("text"), nullptr);
      EXPECT_NE(lines[i].Find("stop"), nullptr);
      EXPECT_GE(NumberAt(lines[i], "seconds"), 0.0);
    } else {
      ASSERT_NE(lines[i].Find("error"), nullptr);
    }
  }
  EXPECT_EQ(lines[0].Find("id")->string, "a");
  EXPECT_LE(NumberAt(lines[1], "generated_tokens"), 5);
  EXPECT_NE(lines[2].Find("error")->string.find("malformed JSON"), std::string::npos);
  EXPECT_NE(lines[3].Find("error")->string.find("empty prompt"), std::string::npos);
  EXPECT_NE(lines[4].Find("error")->string.find("longer than the context"), std::string::npos);
  EXPECT_NE(lines[5].Find("error")->string.find("unknown key"), std::string::npos);
  EXPECT_NE(lines[6].Find("error")->string.find("beyond the context"), std::string::npos);
}

// A byte-order mark before the first prompt is skipped; a line that is not
// UTF-8 or is longer than 1 MiB is reported alone; whatever the model
// generates (it may stop inside a multi-byte character), the output is
// valid UTF-8.
TEST(MlaEvalTest, PromptEncodingsAreCheckedAndTheOutputIsValidUtf8) {
  const std::string prompts = kOut + ".encodings.jsonl";
  {
    std::ofstream p(prompts, std::ios::binary);
    p << "\xEF\xBB\xBF{\"prompt\": \"Once upon a time\"}\n"
      << "{\"prompt\": \"caf\xE9 latin-1\"}\n"
      << "{\"prompt\": \"" << std::string((1 << 20) + 10, 'a') << "\"}\n"
      << "{\"prompt\": \"Tom \xC3\xA9t\xC3\xA9\"}\n";
  }
  const Result r = Eval(absl::StrCat("--task=generate --checkpoint=", kCkpt, " --prompts=", prompts,
                                     " --max_new_tokens=40 --temperature=1 --out=", kOut,
                                     ".encodings.out.jsonl"));
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string out = ReadAll(kOut + ".encodings.out.jsonl");
  EXPECT_EQ(FirstInvalidUtf8(out), out.size());
  const auto lines = ReadJsonl(kOut + ".encodings.out.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].Find("error"), nullptr);
  ASSERT_NE(lines[1].Find("error"), nullptr);
  EXPECT_NE(lines[1].Find("error")->string.find("not valid UTF-8 at byte 15"), std::string::npos);
  ASSERT_NE(lines[2].Find("error"), nullptr);
  EXPECT_NE(lines[2].Find("error")->string.find("line longer than 1048576 bytes"),
            std::string::npos);
  EXPECT_EQ(lines[3].Find("error"), nullptr);
}

TEST(MlaEvalTest, SameSeedGivesTheSameSampledText) {
  const std::string args =
      absl::StrCat("--task=generate --checkpoint=", kCkpt, " --prompts=", kDir,
                   "/prompts.jsonl --max_new_tokens=24 --temperature=1 --top_k=50 --seed=9 --out=");
  ASSERT_EQ(Eval(args + kOut + ".s1.jsonl").code, 0);
  // Another batch size must not change a request's tokens either.
  ASSERT_EQ(Eval(args + kOut + ".s2.jsonl --max_batch=1").code, 0);
  EXPECT_EQ(ReadAll(kOut + ".s1.jsonl").size() > 0, true);
  const auto a = ReadJsonl(kOut + ".s1.jsonl"), b = ReadJsonl(kOut + ".s2.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].Find("text") == nullptr) continue;
    EXPECT_EQ(a[i].Find("text")->string, b[i].Find("text")->string) << "line " << i;
  }
}

TEST(MlaEvalTest, ReportKvBytesEqualTheFormulaAndJudgeFileHasTheRubric) {
  const Result r = Eval(absl::StrCat(
      "--task=report --checkpoint=", kCkpt, " --prompts=", kDir,
      "/prompts.jsonl --max_new_tokens=16 --bench_batches=1,2 --bench_contexts=24 "
      "--bench_steps=4 --bench_repeats=1 --out=", kOut, ".report.json"));
  ASSERT_EQ(r.code, 0) << r.output;
  auto v = json::Parse(ReadAll(kOut + ".report.json"));
  ASSERT_TRUE(v.ok()) << v.status();
  const json::Value* kv = v->Find("kv_cache");
  ASSERT_NE(kv, nullptr);
  // mla_rope, 2 layers, R = 16, P = 4, C = 32: (R + P) per token and layer.
  EXPECT_EQ(NumberAt(*kv, "bytes_per_token_per_layer_fp32"), (16 + 4) * 4);
  EXPECT_EQ(NumberAt(*kv, "bytes_per_token_fp32"), 2 * (16 + 4) * 4);
  EXPECT_EQ(NumberAt(*kv, "bytes_per_token_bf16"), 2 * (16 + 4) * 2);
  EXPECT_EQ(NumberAt(*kv, "mha_bytes_per_token_fp32"), 2 * 2 * 32 * 4);
  EXPECT_NEAR(NumberAt(*kv, "reduction_vs_mha"), 1.0 - 20.0 / 64.0, 1e-12);
  // Both decode modes × 2 batch sizes × 1 context.
  ASSERT_EQ(v->Find("speed")->array.size(), 4u);
  // The roofline: measured in the run, and each cell's KV read is its
  // sequence's cache at the timed steps' mean context (24 − (4 − 1)/2).
  const json::Value* roof = v->Find("roofline");
  ASSERT_NE(roof, nullptr);
  EXPECT_GT(NumberAt(*roof, "read_bandwidth_gb_per_s"), 0);
  EXPECT_GT(NumberAt(*roof, "sgemm_peak_gflops"), 0);
  EXPECT_GE(NumberAt(*roof, "bandwidth_buffer_bytes"), 4 * NumberAt(*roof, "llc_bytes"));
  for (const json::Value& cell : v->Find("speed")->array) {
    const json::Value* rc = cell.Find("roofline");
    ASSERT_NE(rc, nullptr);
    EXPECT_DOUBLE_EQ(NumberAt(*rc, "kv_bytes_per_token"), 22.5 * 2 * (16 + 4) * 4);
    EXPECT_NEAR(NumberAt(*rc, "fraction"),
                NumberAt(cell, "decode_tokens_per_s") / NumberAt(*rc, "tokens_per_s"), 1e-9);
  }
  for (const json::Value& cell : v->Find("speed")->array) EXPECT_EQ(NumberAt(cell, "repeats"), 1);
  const json::Value* text = v->Find("text_metrics");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(NumberAt(*text, "generations"), 3);
  const auto judge = ReadJsonl(kOut + ".report.json.judge.jsonl");
  ASSERT_EQ(judge.size(), 3u);
  for (const auto& j : judge) {
    const std::string& prompt = j.Find("grader_prompt")->string;
    for (const char* word : {"grammar", "creativity", "consistency", "1", "10"})
      EXPECT_NE(prompt.find(word), std::string::npos) << word;
    EXPECT_NE(prompt.find(j.Find("completion")->string), std::string::npos);
  }
}

// Every cell runs --bench_repeats timed decodes, unless --bench_seconds stops
// it once its decodes have taken that long (one always runs): a time no
// decode is shorter than stops every cell after its first.
TEST(MlaEvalTest, BenchSecondsStopsACellsRepeatsEarly) {
  const std::string base = absl::StrCat(
      "--task=report --random_init_config=attention=mha,n_layer=1,d_model=32,n_head=2,vocab_size=64,"
      "context_length=32 --bench_batches=1,3 --bench_contexts=12,20 --bench_steps=4 "
      "--bench_repeats=3 --out=", kOut, ".repeats.json");
  for (const auto& [flag, repeats] : {std::pair<std::string, int>{"", 3},
                                      std::pair<std::string, int>{" --bench_seconds=1e-9", 1}}) {
    const Result r = Eval(base + flag);
    ASSERT_EQ(r.code, 0) << r.output;
    auto v = json::Parse(ReadAll(kOut + ".repeats.json"));
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->Find("speed")->array.size(), 4u);
    for (const json::Value& cell : v->Find("speed")->array) {
      EXPECT_EQ(NumberAt(cell, "repeats"), repeats) << flag;
      EXPECT_GT(NumberAt(cell, "decode_tokens_per_s"), 0) << flag;
      EXPECT_GT(NumberAt(cell, "prefill_tokens_per_s"), 0) << flag;
    }
  }
}

TEST(MlaEvalTest, BadFlagsEndWithOneClearMessage) {
  const struct {
    std::string args, message;
  } cases[] = {
      {"--task=train --checkpoint=" + kCkpt, "unknown --task 'train'"},
      {"--task=generate --checkpoint=" + kCkpt + " --prompts=" + kDir +
           "/prompts.jsonl --max_new_tokens=64",
       "--max_new_tokens must be in [0, context 64)"},
      {"--task=loss --checkpoint=" + kDir + "/missing --val_shard=" + kDir + "/val.bin",
       "missing"},
      {"--task=generate --checkpoint=" + kCkpt + " --prompts=" + kDir + "/nope.jsonl --max_new_tokens=8",
       "cannot open prompts file"},
      {"--task=generate --checkpoint=" + kCkpt + " --prompts=" + kDir +
           "/prompts.jsonl --max_new_tokens=8 --decode=fast",
       "unknown decode mode 'fast'"},
      {"--task=generate --checkpoint=" + kCkpt + " --prompts=" + kDir +
           "/prompts.jsonl --max_new_tokens=8 --device=tpu",
       "--device=tpu: expected cpu or cuda"},
      {"--task=generate --checkpoint=" + kCkpt + " --prompts=" + kDir +
           "/prompts.jsonl --max_new_tokens=8 --n_layer=3",
       "--n_layer: the model config comes from the checkpoint"},
      {"--task=report --random_init_config=n_layers=2", "unknown model config key 'n_layers'"},
      {"--task=report --random_init_config=n_layer=two", "n_layer=two: not an integer"},
      {"--task=report --random_init_config=layers=2,d_model=30,heads=4",
       "n_head=4: must divide d_model=30"},
      {"--task=report --random_init_config=attention=mha,n_layer=1,d_model=32,n_head=2,vocab_size=64 "
       "--bench_repeats=0",
       "--bench_steps (32) and --bench_repeats (0) must be ≥ 1"},
      {"--task=report --random_init_config=attention=mha,n_layer=1,d_model=32,n_head=2,vocab_size=64 "
       "--kv_dtype=bf16",
       "--kv_dtype=bf16 is not supported yet (the KV cache is stored in fp32)"},
      {"--task=report --random_init_config=attention=mha,n_layer=1,d_model=32,n_head=2,vocab_size=64 "
       "--kv_dtype=fp16",
       "--kv_dtype=fp16: expected fp32 (bf16: not supported yet)"},
      {"--task=report --random_init_config=attention=mha,n_layer=1,d_model=32,n_head=2,vocab_size=64 "
       "--bench_seconds=-1",
       "--bench_seconds: -1 must be ≥ 0 (0 = off)"},
  };
  for (const auto& c : cases) {
    const Result r = Eval(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find("mla-eval: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace mla
