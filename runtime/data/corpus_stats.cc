#include "runtime/data/corpus_stats.h"

#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "glog/logging.h"

namespace mla {

UnigramStats ComputeUnigramStats(std::span<const uint16_t> tokens, uint32_t vocab_size) {
  std::vector<uint64_t> counts(vocab_size, 0);
  for (uint16_t t : tokens) {
    CHECK_LT(t, vocab_size) << "token id outside the vocabulary";
    ++counts[t];
  }
  UnigramStats stats;
  stats.tokens = tokens.size();
  if (tokens.empty()) return stats;
  double n = static_cast<double>(tokens.size());
  double h = 0.0;
  for (uint64_t c : counts) {
    if (c == 0) continue;
    ++stats.distinct;
    double p = static_cast<double>(c) / n;
    h -= p * std::log(p);
  }
  stats.entropy_nats = h;
  stats.entropy_bits = h / std::numbers::ln2;
  return stats;
}

namespace {

// Lower-cased words (letters, digits, ' and -) and single punctuation marks.
class WordTokenizer {
 public:
  // Id 0 marks the story start; without `grow`, unseen words share one id.
  std::vector<uint32_t> Tokenize(const std::string& story, bool grow) {
    std::vector<uint32_t> ids = {0, 0};
    std::string word;
    auto flush = [&] {
      if (word.empty()) return;
      ids.push_back(Id(word, grow));
      word.clear();
    };
    for (char c : story) {
      unsigned char u = static_cast<unsigned char>(c);
      if (absl::ascii_isalnum(u) || c == '\'' || c == '-') {
        word.push_back(absl::ascii_tolower(u));
      } else {
        flush();
        if (!absl::ascii_isspace(u)) {
          word.push_back(c);
          flush();
        }
      }
    }
    flush();
    return ids;
  }
  uint32_t size() const { return static_cast<uint32_t>(ids_.size()) + 1; }

 private:
  uint32_t Id(const std::string& w, bool grow) {
    auto it = ids_.find(w);
    if (it != ids_.end()) return it->second;
    if (!grow) return kUnknown;
    uint32_t id = static_cast<uint32_t>(ids_.size()) + 1;
    ids_.emplace(w, id);
    return id;
  }
  static constexpr uint32_t kUnknown = 0x1fffff;
  absl::flat_hash_map<std::string, uint32_t> ids_;
};

uint64_t Key(uint64_t a, uint64_t b, uint64_t c = 0) { return (a << 42) | (b << 21) | c; }

constexpr int kComponents = 5;  // trigram, bigram, unigram, unigram cache, bigram cache
constexpr int kEmIterations = 20;

// Cross-entropy of the EM-fitted mixture of the per-token component probabilities.
double FitMixture(const std::vector<std::array<float, kComponents>>& p) {
  std::array<double, kComponents> w;
  w.fill(1.0 / kComponents);
  double nats = 0.0;
  for (int it = 0; it <= kEmIterations; ++it) {
    std::array<double, kComponents> next{};
    nats = 0.0;
    for (const auto& row : p) {
      double mix = 0.0;
      for (int k = 0; k < kComponents; ++k) mix += w[k] * row[k];
      nats -= std::log(mix);
      for (int k = 0; k < kComponents; ++k) next[k] += w[k] * row[k] / mix;
    }
    for (int k = 0; k < kComponents; ++k) w[k] = next[k] / static_cast<double>(p.size());
  }
  return nats / static_cast<double>(p.size());
}

}  // namespace

ContextSensitivity MeasureContextSensitivity(const std::vector<std::string>& stories,
                                             int short_context, int long_context) {
  CHECK_GE(stories.size(), 10u) << "context sensitivity needs at least 10 stories";
  CHECK(0 < short_context && short_context < long_context);
  size_t train = stories.size() * 9 / 10;
  ContextSensitivity r;
  r.train_stories = static_cast<int64_t>(train);
  r.eval_stories = static_cast<int64_t>(stories.size() - train);
  r.short_context = short_context;
  r.long_context = long_context;

  WordTokenizer tokenizer;
  std::vector<uint64_t> uni;
  absl::flat_hash_map<uint64_t, uint32_t> bi, bi_ctx, tri, tri_ctx;
  uint64_t total = 0;
  for (size_t s = 0; s < train; ++s) {
    std::vector<uint32_t> t = tokenizer.Tokenize(stories[s], true);
    if (uni.size() < tokenizer.size()) uni.resize(tokenizer.size(), 0);
    for (size_t i = 2; i < t.size(); ++i) {
      ++uni[t[i]];
      ++total;
      ++bi[Key(0, t[i - 1], t[i])];
      ++bi_ctx[t[i - 1]];
      ++tri[Key(t[i - 2], t[i - 1], t[i])];
      ++tri_ctx[Key(0, t[i - 2], t[i - 1])];
    }
  }
  auto count = [](const absl::flat_hash_map<uint64_t, uint32_t>& m, uint64_t k) -> double {
    auto it = m.find(k);
    return it == m.end() ? 0.0 : it->second;
  };
  double vocab = static_cast<double>(uni.size()) + 1.0;  // + one class for unseen words

  std::vector<std::array<float, kComponents>> short_p, long_p;
  for (size_t s = train; s < stories.size(); ++s) {
    std::vector<uint32_t> t = tokenizer.Tokenize(stories[s], false);
    for (size_t i = 2; i < t.size(); ++i) {
      uint32_t w = t[i], v = t[i - 1], u = t[i - 2];
      std::array<float, kComponents> row{};
      double c_uv = count(tri_ctx, Key(0, u, v)), c_v = count(bi_ctx, v);
      row[0] = c_uv > 0 ? static_cast<float>(count(tri, Key(u, v, w)) / c_uv) : 0.0f;
      row[1] = c_v > 0 ? static_cast<float>(count(bi, Key(0, v, w)) / c_v) : 0.0f;
      double c_w = w < uni.size() ? static_cast<double>(uni[w]) : 0.0;
      row[2] = static_cast<float>((c_w + 0.5) / (static_cast<double>(total) + 0.5 * vocab));
      for (int window : {short_context, long_context}) {
        // The story's tokens [from, i): the window the model may look at.
        size_t from = i > static_cast<size_t>(window) + 2 ? i - window : 2;
        double same = 0, pairs = 0, pair_same = 0;
        for (size_t j = from; j < i; ++j) {
          same += t[j] == w;
          if (j > from && t[j - 1] == v) {
            ++pairs;
            pair_same += t[j] == w;
          }
        }
        double n = static_cast<double>(i - from);
        row[3] = n > 0 ? static_cast<float>(same / n) : 0.0f;
        row[4] = pairs > 0 ? static_cast<float>(pair_same / pairs) : 0.0f;
        (window == short_context ? short_p : long_p).push_back(row);
      }
    }
  }
  r.eval_tokens = static_cast<int64_t>(short_p.size());
  r.short_nats = FitMixture(short_p);
  r.long_nats = FitMixture(long_p);
  return r;
}

}  // namespace mla
