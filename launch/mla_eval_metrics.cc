#include "launch/mla_eval_metrics.h"

#include <cctype>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mla {

std::vector<std::string> MetricWords(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty())) {
    size_t b = 0, e = w.size();
    while (b < e && std::ispunct(static_cast<unsigned char>(w[b]))) ++b;
    while (e > b && std::ispunct(static_cast<unsigned char>(w[e - 1]))) --e;
    if (b == e) continue;
    std::string word(w.substr(b, e - b));
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(std::move(word));
  }
  return out;
}

TextMetrics ComputeTextMetrics(const std::vector<GenerationText>& gens) {
  TextMetrics m;
  m.generations = static_cast<int64_t>(gens.size());
  if (gens.empty()) return m;
  absl::flat_hash_set<std::string> uni, bi;
  int64_t n_uni = 0, n_bi = 0, n_four = 0, repeated_four = 0, words = 0, tokens = 0, eos = 0;
  for (const GenerationText& g : gens) {
    const std::vector<std::string> w = MetricWords(g.text);
    words += static_cast<int64_t>(w.size());
    tokens += g.tokens;
    eos += g.ended_at_eos;
    for (size_t i = 0; i < w.size(); ++i) {
      uni.insert(w[i]);
      ++n_uni;
      if (i + 1 < w.size()) {
        bi.insert(absl::StrCat(w[i], " ", w[i + 1]));
        ++n_bi;
      }
    }
    absl::flat_hash_set<std::string> seen;
    for (size_t i = 0; i + 4 <= w.size(); ++i) {
      const std::string g4 = absl::StrJoin(w.begin() + i, w.begin() + i + 4, " ");
      ++n_four;
      if (!seen.insert(g4).second) ++repeated_four;
    }
  }
  const double n = static_cast<double>(gens.size());
  m.distinct_1 = n_uni > 0 ? static_cast<double>(uni.size()) / n_uni : 0.0;
  m.distinct_2 = n_bi > 0 ? static_cast<double>(bi.size()) / n_bi : 0.0;
  m.repetition_rate = n_four > 0 ? static_cast<double>(repeated_four) / n_four : 0.0;
  m.mean_words = words / n;
  m.mean_tokens = tokens / n;
  m.eos_share = eos / n;
  return m;
}

}  // namespace mla
