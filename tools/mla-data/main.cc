// mla-data: builds the training data. Subcommands:
//   stories    generate the synthetic story corpus        -> OUT/stories.txt
//   tokenizer  train the BPE tokenizer on a corpus         -> OUT/tokenizer.model
//   tokenize   write train/val token shards                -> OUT/train.bin, OUT/val.bin
//   inspect    check and describe token shards
//   all        stories (or --corpus) -> tokenizer -> shards in one go
// Every failure prints one line naming the file and the problem and exits 1.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "base/cli.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "runtime/data/corpus.h"
#include "runtime/data/corpus_stats.h"
#include "runtime/data/mapped_file.h"
#include "runtime/data/story_generator.h"
#include "runtime/data/token_shard.h"
#include "runtime/data/tokenize_corpus.h"
#include "runtime/data/tokenizer.h"

ABSL_FLAG(std::string, out, "data",
          "Output directory (stories, tokenizer, tokenize, all); created if missing.");
ABSL_FLAG(int64_t, count, 100000, "stories: number of stories to generate.");
ABSL_FLAG(std::string, grammar, "v1",
          "stories, all: the story grammar: a built-in one (v1: the original corpus; v2: "
          "richer, with long-range structure) or the path of a grammar file (docs/data.md).");
ABSL_FLAG(uint64_t, seed, 1,
          "Seed of the story generator (stories), of the tokenizer's sample of stories "
          "(tokenizer) and of the train/val split (tokenize).");
ABSL_FLAG(std::string, corpus, "",
          "tokenizer, tokenize, all: the story corpus to read. Default for tokenizer/tokenize: "
          "OUT/stories.txt; for all: generate stories instead.");
ABSL_FLAG(std::string, format, "auto",
          "Corpus format: auto | endoftext (TinyStories text, stories separated by "
          "<|endoftext|>) | json (TinyStories JSON: objects with a \"story\" field; JSON lines "
          "with \"text\" also read) | lines (one story per line). auto detects from the content.");
ABSL_FLAG(int32_t, vocab_size, 4096, "tokenizer: BPE vocabulary size (260..65536).");
ABSL_FLAG(int32_t, tokenizer_sentences, 200000,
          "tokenizer: at most this many stories (a seeded sample) train the tokenizer.");
ABSL_FLAG(std::string, tokenizer, "",
          "tokenize, inspect: the tokenizer model. Default: OUT/tokenizer.model (tokenize), "
          "tokenizer.model beside the shard (inspect, optional there).");
ABSL_FLAG(double, val_fraction, 0.05, "tokenize: fraction of stories in the validation split.");
ABSL_FLAG(int32_t, threads, 2,
          "Worker threads for generating stories, training the tokenizer and tokenizing (the "
          "stories do not depend on it).");
ABSL_FLAG(int64_t, context_stories, 10000,
          "stories: measure the corpus's context sensitivity on its first N stories (90 % to "
          "count n-grams, 10 % held out; docs/data.md); with a grammar other than v1, v1 "
          "stories of the same seed are measured too, for comparison. 0 skips it.");
ABSL_FLAG(int32_t, sample_tokens, 80, "inspect: number of tokens to decode and print.");

namespace mla {
namespace {

constexpr char kUsage[] = R"(builds story corpora, tokenizers and token shards.

Usage: mla-data <subcommand> [flags]

  stories    --count N --seed S --grammar G --out DIR
             Generates N distinct synthetic children's stories into DIR/stories.txt
             (one per line) from grammar G (v1, v2 or a grammar file) and prints
             corpus statistics and the context-sensitivity figure.
  tokenizer  [--corpus FILE --format F] --vocab_size V --tokenizer_sentences K --out DIR
             Trains a sentencepiece BPE tokenizer (byte fallback, unk=0 bos=1 eos=2)
             and writes DIR/tokenizer.model.
  tokenize   [--corpus FILE --format F --tokenizer MODEL] --val_fraction P --seed S
             --threads T --out DIR
             Splits stories into train/val by story and writes DIR/train.bin and
             DIR/val.bin (docs/data-format.md), each story followed by EOS.
  inspect    SHARD... [--tokenizer MODEL --sample_tokens K]
             Prints header, counts, checksum status, unigram entropy and a decoded
             sample; exits 1 when a shard is invalid.
  all        [--corpus FILE] --out DIR (plus the flags above)
             stories (unless --corpus) -> tokenizer -> tokenize.)";

absl::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create directory: ", ec.message()));
  return absl::OkStatus();
}

std::string OutPath(absl::string_view name) {
  return (std::filesystem::path(absl::GetFlag(FLAGS_out)) / std::string(name)).string();
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

absl::StatusOr<std::vector<std::string>> LoadCorpus(const std::string& default_path) {
  std::string path = absl::GetFlag(FLAGS_corpus);
  if (path.empty()) path = default_path;
  MLA_ASSIGN_OR_RETURN(CorpusFormat format, ParseCorpusFormat(absl::GetFlag(FLAGS_format)));
  auto start = std::chrono::steady_clock::now();
  MLA_ASSIGN_OR_RETURN(std::vector<std::string> stories, ReadCorpus(path, format));
  std::printf("corpus     %s: %zu stories (read in %.2f s)\n", path.c_str(), stories.size(),
              Seconds(start));
  StoryCorpusStats stats;
  CountWords(stories, &stats);
  std::printf("           words %lld (per story: mean %.1f, median %lld, p90 %lld, min %lld, "
              "max %lld), distinct words %lld\n",
              static_cast<long long>(stats.words),
              static_cast<double>(stats.words) / static_cast<double>(stats.stories),
              static_cast<long long>(stats.median_words), static_cast<long long>(stats.p90_words),
              static_cast<long long>(stats.min_words), static_cast<long long>(stats.max_words),
              static_cast<long long>(stats.distinct_words));
  return stories;
}

constexpr int kShortContext = 16, kLongContext = 128;

void PrintContextSensitivity(const char* label, const ContextSensitivity& c) {
  std::printf("           %s: %.4f nats/token (ctx %d: %.4f, ctx %d: %.4f; %lld held-out tokens)\n",
              label, c.gap(), c.short_context, c.short_nats, c.long_context, c.long_nats,
              static_cast<long long>(c.eval_tokens));
}

// The context-sensitivity figure of the first --context_stories stories, and
// of v1 stories of the same seed when the grammar is another one.
absl::Status ReportContextSensitivity(const std::vector<std::string>& stories,
                                      const StoryOptions& options, uint64_t seed) {
  int64_t n = std::min<int64_t>(absl::GetFlag(FLAGS_context_stories),
                                static_cast<int64_t>(stories.size()));
  if (n <= 0) return absl::OkStatus();
  if (n < 10) {
    std::printf("context    (needs at least 10 stories; skipped)\n");
    return absl::OkStatus();
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> sample(stories.begin(), stories.begin() + n);
  ContextSensitivity c = MeasureContextSensitivity(sample, kShortContext, kLongContext);
  std::printf("context    sensitivity = cross-entropy gain from seeing tokens %d..%d back "
              "(%lld stories: %lld to count, %lld held out)\n",
              kShortContext + 1, kLongContext, static_cast<long long>(n),
              static_cast<long long>(c.train_stories), static_cast<long long>(c.eval_stories));
  PrintContextSensitivity(options.grammar.c_str(), c);
  if (options.grammar != "v1") {
    StoryOptions v1 = options;
    v1.grammar = "v1";
    MLA_ASSIGN_OR_RETURN(std::vector<std::string> reference, GenerateStories(n, seed, v1, nullptr));
    ContextSensitivity r = MeasureContextSensitivity(reference, kShortContext, kLongContext);
    PrintContextSensitivity("v1 (reference)", r);
    std::printf("           ratio %s / v1: %.2f\n", options.grammar.c_str(),
                r.gap() > 0 ? c.gap() / r.gap() : 0.0);
  }
  std::printf("           (measured in %.2f s)\n", Seconds(start));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RunStories() {
  int64_t count = absl::GetFlag(FLAGS_count);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  MLA_RETURN_IF_ERROR(MakeDir(absl::GetFlag(FLAGS_out)));
  auto start = std::chrono::steady_clock::now();
  StoryCorpusStats stats;
  StoryOptions options;
  options.grammar = absl::GetFlag(FLAGS_grammar);
  options.threads = absl::GetFlag(FLAGS_threads);
  MLA_ASSIGN_OR_RETURN(std::vector<std::string> stories,
                       GenerateStories(count, seed, options, &stats));
  double gen_s = Seconds(start);
  std::string path = OutPath("stories.txt");
  MLA_RETURN_IF_ERROR(WriteCorpusLines(path, stories));
  std::printf(
      "stories    %s: %lld stories, grammar %s, seed %llu, generated in %.2f s on %d threads "
      "(with statistics)\n"
      "           words %lld (per story: mean %.1f, median %lld, p90 %lld, min %lld, max %lld), "
      "distinct words %lld\n"
      "           sentence templates used %lld of %lld, distinct sentence frames %lld\n",
      path.c_str(), static_cast<long long>(stats.stories), options.grammar.c_str(),
      static_cast<unsigned long long>(seed), gen_s, options.threads,
      static_cast<long long>(stats.words),
      static_cast<double>(stats.words) / static_cast<double>(stats.stories),
      static_cast<long long>(stats.median_words), static_cast<long long>(stats.p90_words),
      static_cast<long long>(stats.min_words), static_cast<long long>(stats.max_words),
      static_cast<long long>(stats.distinct_words),
      static_cast<long long>(stats.distinct_templates),
      static_cast<long long>(stats.available_templates),
      static_cast<long long>(stats.distinct_frames));
  MLA_RETURN_IF_ERROR(ReportContextSensitivity(stories, options, seed));
  return stories;
}

absl::StatusOr<Tokenizer> RunTokenizer(const std::vector<std::string>& stories) {
  MLA_RETURN_IF_ERROR(MakeDir(absl::GetFlag(FLAGS_out)));
  TokenizerTrainOptions options;
  options.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  options.max_sentences = absl::GetFlag(FLAGS_tokenizer_sentences);
  options.num_threads = absl::GetFlag(FLAGS_threads);
  options.seed = absl::GetFlag(FLAGS_seed);
  auto start = std::chrono::steady_clock::now();
  MLA_ASSIGN_OR_RETURN(Tokenizer tokenizer, TrainTokenizer(stories, options));
  std::string path = OutPath("tokenizer.model");
  MLA_RETURN_IF_ERROR(WriteFileAtomically(path, tokenizer.model_bytes()));
  std::printf("tokenizer  %s: BPE vocab %d (bos %d, eos %d), trained on %zu stories in %.1f s\n",
              path.c_str(), tokenizer.vocab_size(), tokenizer.bos_id(), tokenizer.eos_id(),
              std::min<size_t>(stories.size(), static_cast<size_t>(options.max_sentences)),
              Seconds(start));
  if (tokenizer.vocab_size() < options.vocab_size) {
    std::printf("           (the corpus supports only %d of the %d requested pieces)\n",
                tokenizer.vocab_size(), options.vocab_size);
  }
  return tokenizer;
}

absl::Status RunTokenize(const std::vector<std::string>& stories, const Tokenizer& tokenizer) {
  MLA_RETURN_IF_ERROR(MakeDir(absl::GetFlag(FLAGS_out)));
  TokenizeOptions options;
  options.val_fraction = absl::GetFlag(FLAGS_val_fraction);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.threads = absl::GetFlag(FLAGS_threads);
  std::string train = OutPath("train.bin"), val = OutPath("val.bin");
  MLA_ASSIGN_OR_RETURN(TokenizeReport r, TokenizeCorpus(stories, tokenizer, train, val, options));
  double mb = static_cast<double>(r.text_bytes) / 1e6;
  std::printf(
      "tokenize   %.1f MB of text in %.2f s on %d threads: %.1f MB/s, %.1f MB/s per thread\n"
      "           %s: %lld stories, %lld tokens\n"
      "           %s: %lld stories, %lld tokens\n",
      mb, r.encode_seconds, r.threads, mb / r.encode_seconds,
      mb / r.encode_seconds / r.threads, train.c_str(), static_cast<long long>(r.train_stories),
      static_cast<long long>(r.train_tokens), val.c_str(), static_cast<long long>(r.val_stories),
      static_cast<long long>(r.val_tokens));
  return absl::OkStatus();
}

absl::Status Inspect(const std::string& path) {
  MLA_ASSIGN_OR_RETURN(ShardHeader h, ReadShardHeader(path));
  std::printf("%s\n  format version %u, vocab %u, eos %u\n  tokens %llu, stories %llu, "
              "checksum %016llx\n",
              path.c_str(), h.version, h.vocab_size, h.eos_id,
              static_cast<unsigned long long>(h.token_count),
              static_cast<unsigned long long>(h.document_count),
              static_cast<unsigned long long>(h.checksum));
  // Full validation: checksum and token range.
  MLA_ASSIGN_OR_RETURN(TokenShard shard, TokenShard::Open(path));
  std::printf("  checksum OK, all token ids < vocab\n");
  UnigramStats stats = ComputeUnigramStats(shard.tokens(), h.vocab_size);
  std::printf("  distinct tokens %u, unigram entropy %.4f nats/token (%.4f bits/token)\n",
              stats.distinct, stats.entropy_nats, stats.entropy_bits);
  std::string model = absl::GetFlag(FLAGS_tokenizer);
  if (model.empty()) {
    std::filesystem::path beside = std::filesystem::path(path).parent_path() / "tokenizer.model";
    if (std::filesystem::exists(beside)) model = beside.string();
  }
  if (model.empty()) {
    std::printf("  (no tokenizer.model beside the shard and no --tokenizer: no decoded sample)\n");
    return absl::OkStatus();
  }
  MLA_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::Load(model));
  if (static_cast<uint32_t>(tokenizer.vocab_size()) != h.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": vocab ", h.vocab_size,
                                                   " does not match tokenizer ", model,
                                                   " (vocab ", tokenizer.vocab_size(), ")"));
  }
  size_t n = std::min<size_t>(shard.size(), absl::GetFlag(FLAGS_sample_tokens));
  std::vector<int> ids(shard.tokens().begin(), shard.tokens().begin() + n);
  std::string shown;
  for (size_t i = 0; i < std::min<size_t>(n, 16); ++i) absl::StrAppend(&shown, ids[i], " ");
  std::printf("  first tokens: %s...\n  decoded (%zu tokens, %s): %s\n", shown.c_str(), n,
              model.c_str(), tokenizer.Decode(ids).c_str());
  return absl::OkStatus();
}

absl::Status Run(const std::vector<char*>& args) {
  if (args.size() < 2) {
    return absl::InvalidArgumentError("missing subcommand (stories, tokenizer, tokenize, "
                                      "inspect or all); see mla-data --help");
  }
  std::string cmd = args[1];
  bool extra_args = args.size() > 2 && cmd != "inspect";
  if (extra_args) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", args[2], "' after ", cmd, "; see mla-data --help"));
  }
  if (cmd == "stories") return RunStories().status();
  if (cmd == "tokenizer") {
    MLA_ASSIGN_OR_RETURN(auto stories, LoadCorpus(OutPath("stories.txt")));
    return RunTokenizer(stories).status();
  }
  if (cmd == "tokenize") {
    std::string model = absl::GetFlag(FLAGS_tokenizer);
    if (model.empty()) model = OutPath("tokenizer.model");
    MLA_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::Load(model));
    MLA_ASSIGN_OR_RETURN(auto stories, LoadCorpus(OutPath("stories.txt")));
    return RunTokenize(stories, tokenizer);
  }
  if (cmd == "inspect") {
    if (args.size() < 3) return absl::InvalidArgumentError("inspect: name at least one shard file");
    for (size_t i = 2; i < args.size(); ++i) MLA_RETURN_IF_ERROR(Inspect(args[i]));
    return absl::OkStatus();
  }
  if (cmd == "all") {
    std::vector<std::string> stories;
    if (absl::GetFlag(FLAGS_corpus).empty()) {
      MLA_ASSIGN_OR_RETURN(stories, RunStories());
    } else {
      MLA_ASSIGN_OR_RETURN(stories, LoadCorpus(""));
    }
    MLA_ASSIGN_OR_RETURN(Tokenizer tokenizer, RunTokenizer(stories));
    MLA_RETURN_IF_ERROR(RunTokenize(stories, tokenizer));
    MLA_RETURN_IF_ERROR(Inspect(OutPath("train.bin")));
    return Inspect(OutPath("val.bin"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown subcommand '", cmd, "' (expected stories, tokenizer, tokenize, inspect or all)"));
}

}  // namespace
}  // namespace mla

int main(int argc, char** argv) {
  mla::SetCommandLineUsage(mla::kUsage);
  // --help lists this tool's flags (Abseil's default matches the program name
  // against the defining file's name, which is main.cc here).
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  absl::Status status = mla::Run(args);
  if (!status.ok()) {
    std::fprintf(stderr, "mla-data: error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
