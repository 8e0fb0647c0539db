#pragma once
// Tokenizer: the sentencepiece BPE model that training, evaluation and the data
// tools share, and its trainer. A Tokenizer owns the serialized model bytes, so
// a checkpoint can embed them and rebuild the exact same tokenizer.
//
// Thread safety: Encode/Decode are const and may run concurrently.
// Failure: Load/LoadFromBytes/Train return a status naming the file or the
// sentencepiece error; Encode/Decode CHECK-fail only on a broken model (they
// cannot fail on any input text: byte fallback covers every byte).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/sentencepiece_bridge.h"

namespace mla {

class Tokenizer {
 public:
  static absl::StatusOr<Tokenizer> Load(const std::string& path);
  static absl::StatusOr<Tokenizer> LoadFromBytes(std::string model_bytes);

  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text to ids, without BOS/EOS (the shard writer adds EOS after each story).
  std::vector<int> Encode(absl::string_view text) const;
  // Ids to text; BOS/EOS and other control ids decode to nothing.
  std::string Decode(const std::vector<int>& ids) const;

  int vocab_size() const { return model_->vocab_size(); }
  int bos_id() const { return model_->bos_id(); }
  int eos_id() const { return model_->eos_id(); }
  // The serialized sentencepiece model (the `.model` file's bytes).
  const std::string& model_bytes() const { return model_bytes_; }
  std::string IdToPiece(int id) const { return model_->IdToPiece(id); }
  // True when a text's encoding is the concatenation of its space-separated
  // words' encodings: no piece holds a space except as its first character,
  // and the model reproduces text exactly (identity normalisation, checked on
  // a probe with tabs, newlines, doubled spaces and compatibility characters).
  // Models trained by TrainTokenizer have this property.
  bool splits_at_spaces() const { return splits_at_spaces_; }

 private:
  Tokenizer(std::string bytes, std::unique_ptr<spm::SpmModel> model);

  std::string model_bytes_;
  std::unique_ptr<spm::SpmModel> model_;
  bool splits_at_spaces_ = false;
};

// Encodes exactly like Tokenizer::Encode, but memoises the ids of each
// space-delimited word. Exact when tokenizer.splits_at_spaces(): no piece
// spans a space, so a text's encoding is the concatenation of its words'
// encodings (each word with its leading space, which sentencepiece's dummy
// prefix supplies); otherwise, and for texts with leading, trailing or doubled
// spaces, it encodes the whole text. Sentencepiece's BPE encoder runs at about
// 2 MB/s; with the cache a corpus encodes about ten times faster.
//
// Thread safety: one per thread (the cache is unsynchronised); the Tokenizer
// must outlive it.
class CachedEncoder {
 public:
  explicit CachedEncoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Appends the ids of `text` to *ids.
  void Encode(absl::string_view text, std::vector<int>* ids);
  size_t cached_words() const { return cache_.size(); }

 private:
  const Tokenizer& tokenizer_;
  absl::flat_hash_map<std::string, std::vector<int>> cache_;
};

struct TokenizerTrainOptions {
  int vocab_size = 4096;
  // Stories sampled for training (sentencepiece's input_sentence_size); bounds
  // trainer time and memory on large corpora.
  int max_sentences = 200000;
  int num_threads = 2;
  uint64_t seed = 1;
};

// Trains a BPE model on `stories` (one sentence per story; newlines inside a
// story become spaces for the trainer only): byte fallback, identity
// normalisation (so Decode(Encode(s)) == s), ids unk=0, bos=1, eos=2, no pad.
absl::StatusOr<Tokenizer> TrainTokenizer(const std::vector<std::string>& stories,
                                         const TokenizerTrainOptions& options);

}  // namespace mla
