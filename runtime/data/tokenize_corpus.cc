#include "runtime/data/tokenize_corpus.h"

#include <chrono>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "runtime/data/random.h"
#include "runtime/data/token_shard.h"

namespace mla {

bool IsValidationStory(absl::string_view story, uint64_t seed, double val_fraction) {
  constexpr uint64_t kBuckets = 1000000;
  uint64_t bucket = MixSeed(seed, Fnv1a64(story.data(), story.size())) % kBuckets;
  return static_cast<double>(bucket) < val_fraction * kBuckets;
}

namespace {

// One worker's output: tokens (EOS-terminated stories) per split.
struct Encoded {
  std::vector<uint16_t> train, val;
  int64_t train_stories = 0, val_stories = 0, bytes = 0;
};

}  // namespace

absl::StatusOr<TokenizeReport> TokenizeCorpus(const std::vector<std::string>& stories,
                                              const Tokenizer& tokenizer,
                                              const std::string& train_path,
                                              const std::string& val_path,
                                              const TokenizeOptions& options) {
  if (options.val_fraction < 0.0 || options.val_fraction >= 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation fraction ", options.val_fraction, " outside [0, 1)"));
  }
  if (stories.empty()) return absl::InvalidArgumentError("no stories to tokenize");
  int threads = std::max(1, options.threads);
  std::vector<Encoded> parts(static_cast<size_t>(threads));
  const uint16_t eos = static_cast<uint16_t>(tokenizer.eos_id());
  // Contiguous ranges keep the corpus order when the parts are concatenated.
  auto work = [&](int t) {
    size_t begin = stories.size() * t / threads, end = stories.size() * (t + 1) / threads;
    Encoded& out = parts[t];
    CachedEncoder encoder(tokenizer);
    std::vector<int> ids;
    for (size_t i = begin; i < end; ++i) {
      const std::string& s = stories[i];
      bool val = IsValidationStory(s, options.seed, options.val_fraction);
      std::vector<uint16_t>& dst = val ? out.val : out.train;
      ids.clear();
      encoder.Encode(s, &ids);
      for (int id : ids) dst.push_back(static_cast<uint16_t>(id));
      dst.push_back(eos);
      (val ? out.val_stories : out.train_stories) += 1;
      out.bytes += static_cast<int64_t>(s.size());
    }
  };
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
  TokenizeReport report;
  report.encode_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.threads = threads;

  MLA_ASSIGN_OR_RETURN(auto train, ShardWriter::Create(train_path, tokenizer.vocab_size(), eos));
  MLA_ASSIGN_OR_RETURN(auto val, ShardWriter::Create(val_path, tokenizer.vocab_size(), eos));
  for (const Encoded& p : parts) {
    MLA_RETURN_IF_ERROR(train->AppendTokens(p.train, p.train_stories));
    MLA_RETURN_IF_ERROR(val->AppendTokens(p.val, p.val_stories));
    report.train_stories += p.train_stories;
    report.val_stories += p.val_stories;
    report.train_tokens += static_cast<int64_t>(p.train.size());
    report.val_tokens += static_cast<int64_t>(p.val.size());
    report.text_bytes += p.bytes;
  }
  MLA_RETURN_IF_ERROR(train->Finish());
  MLA_RETURN_IF_ERROR(val->Finish());
  return report;
}

}  // namespace mla
