#include "runtime/data/tokenizer.h"

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "runtime/data/mapped_file.h"
#include "runtime/data/random.h"

namespace mla {

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  MLA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (bytes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty tokenizer model file"));
  }
  auto tokenizer = LoadFromBytes(std::move(bytes));
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a sentencepiece model: ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<Tokenizer> Tokenizer::LoadFromBytes(std::string model_bytes) {
  std::string error;
  std::unique_ptr<spm::SpmModel> model = spm::SpmModel::FromSerialized(model_bytes, &error);
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer model: ", error));
  }
  if (model->vocab_size() > 65536) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer vocab ", model->vocab_size(),
                                                   " does not fit uint16 token shards"));
  }
  if (model->eos_id() < 0) {
    return absl::InvalidArgumentError("tokenizer model has no EOS token");
  }
  return Tokenizer(std::move(model_bytes), std::move(model));
}

Tokenizer::Tokenizer(std::string bytes, std::unique_ptr<spm::SpmModel> model)
    : model_bytes_(std::move(bytes)), model_(std::move(model)) {
  // "\xe2\x96\x81" is U+2581, sentencepiece's marker for a space.
  constexpr char kSpaceMarker[] = "\xe2\x96\x81";
  bool split = true;
  for (int id = 0; id < model_->vocab_size() && split; ++id) {
    std::string piece = model_->IdToPiece(id);
    size_t at = piece.find(kSpaceMarker, 1);
    split = at == std::string::npos;
  }
  // Identity normalisation leaves all of these as they are; NFKC-style rules
  // fold the ligature and full-width letters and turn tabs/newlines to spaces.
  const std::string probe = "A\tb\nc  d \xef\xac\x81 \xef\xbc\xa1 e";
  splits_at_spaces_ = split && Decode(Encode(probe)) == probe;
}

std::vector<int> Tokenizer::Encode(absl::string_view text) const {
  std::vector<int> ids;
  std::string error;
  CHECK(model_->Encode(text.data(), text.size(), &ids, &error)) << "sentencepiece: " << error;
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int>& ids) const {
  std::string text;
  std::string error;
  CHECK(model_->Decode(ids, &text, &error)) << "sentencepiece: " << error;
  return text;
}

void CachedEncoder::Encode(absl::string_view text, std::vector<int>* ids) {
  if (text.empty()) return;
  if (!tokenizer_.splits_at_spaces() || text.front() == ' ' || text.back() == ' ' ||
      text.find("  ") != absl::string_view::npos) {
    std::vector<int> whole = tokenizer_.Encode(text);
    ids->insert(ids->end(), whole.begin(), whole.end());
    return;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(' ', start);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view word = text.substr(start, end - start);
    auto it = cache_.find(word);
    if (it == cache_.end()) it = cache_.emplace(word, tokenizer_.Encode(word)).first;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    start = end + 1;
  }
}

absl::StatusOr<Tokenizer> TrainTokenizer(const std::vector<std::string>& stories,
                                         const TokenizerTrainOptions& options) {
  if (stories.empty()) return absl::InvalidArgumentError("cannot train a tokenizer: no stories");
  if (options.vocab_size < 260 || options.vocab_size > 65536) {
    // 256 byte-fallback pieces + unk/bos/eos need room; shards hold uint16.
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer vocab size ", options.vocab_size, " outside 260..65536"));
  }
  std::map<std::string, std::string> flags = {
      {"model_type", "bpe"},
      {"vocab_size", absl::StrCat(options.vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      // A small synthetic corpus may not support the full vocabulary; then the
      // model gets as many pieces as the corpus allows (reported by the caller).
      {"hard_vocab_limit", "false"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"input_sentence_size", "0"},  // sampled below, deterministically
      {"max_sentence_length", "16384"},
      {"num_threads", absl::StrCat(options.num_threads)},
      {"minloglevel", "1"},
  };
  // sentencepiece's own sampling draws from an unseeded generator; sample here
  // so the same corpus and seed always give the same model.
  std::vector<uint32_t> order(stories.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  if (options.max_sentences > 0 && order.size() > static_cast<size_t>(options.max_sentences)) {
    SplitMix64 rng(MixSeed(options.seed, 0x746f6b));
    Shuffle(std::span<uint32_t>(order), rng);
    order.resize(options.max_sentences);
    std::sort(order.begin(), order.end());
  }
  size_t next = 0;
  auto next_sentence = [&](std::string* out) {
    while (next < order.size()) {
      const std::string& s = stories[order[next++]];
      if (s.empty()) continue;
      out->assign(s);
      for (char& c : *out) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      }
      return true;
    }
    return false;
  };
  std::string bytes;
  std::string error;
  if (!spm::Train(flags, next_sentence, static_cast<unsigned>(options.seed), &bytes, &error)) {
    return absl::InternalError(absl::StrCat("sentencepiece training failed: ", error));
  }
  return Tokenizer::LoadFromBytes(std::move(bytes));
}

}  // namespace mla
