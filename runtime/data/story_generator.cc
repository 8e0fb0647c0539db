#include "runtime/data/story_generator.h"

#include <algorithm>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "runtime/data/random.h"
#include "runtime/data/token_shard.h"

namespace mla {
namespace {

// Stories generated from seeds 0.. when a grammar is loaded, to catch errors
// that only some choices reach.
constexpr uint64_t kCheckStories = 200;
// An `until` that has not held after this many tries is a grammar error.
constexpr int kMaxTries = 10000;

size_t CountWordsIn(absl::string_view s) {
  size_t words = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

uint64_t Combine(uint64_t h, uint64_t v) {
  return (h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2))) * 0xff51afd7ed558ccdull;
}

// Runs a grammar's story plan for one stream seed.
class StoryWriter {
 public:
  StoryWriter(const StoryGrammar& g, uint64_t seed, StoryTrace* trace)
      : g_(g),
        rng_(seed),
        trace_(trace),
        vars_(g.variables.size()),
        is_set_(g.variables.size(), false),
        sections_(g.sections.size()) {}

  absl::StatusOr<std::string> Run() {
    MLA_RETURN_IF_ERROR(RunAll(g_.story));
    std::string story;
    for (const std::string& s : sections_) {
      if (s.empty()) continue;
      if (!story.empty()) story.push_back(' ');
      story += s;
    }
    return story;
  }

 private:
  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(g_.source, ":", line, ": ", what));
  }

  void Set(int var, std::string value) {
    vars_[var] = std::move(value);
    is_set_[var] = true;
  }

  absl::StatusOr<const std::string*> Get(int var, int line) const {
    if (!is_set_[var]) {
      return Error(line, absl::StrCat("variable '", g_.variables[var],
                                      "' is used before the story sets it"));
    }
    return &vars_[var];
  }

  absl::Status RunAll(const std::vector<GrammarStatement>& statements) {
    for (const GrammarStatement& s : statements) MLA_RETURN_IF_ERROR(RunOne(s));
    return absl::OkStatus();
  }

  absl::Status RunOne(const GrammarStatement& s) {
    using Kind = GrammarStatement::Kind;
    switch (s.kind) {
      case Kind::kLet:
      case Kind::kCall:
        for (int tries = 0;; ++tries) {
          if (tries == kMaxTries) {
            return Error(s.line, absl::StrCat("'until' condition still false after ", kMaxTries,
                                              " tries"));
          }
          if (s.kind == Kind::kLet) {
            MLA_RETURN_IF_ERROR(Let(s));
          } else {
            MLA_RETURN_IF_ERROR(RunAll(s.body));
          }
          if (!s.has_until) break;
          MLA_ASSIGN_OR_RETURN(bool done, Holds(s.until));
          if (done) break;
        }
        return absl::OkStatus();
      case Kind::kSet: {
        std::string value;
        MLA_RETURN_IF_ERROR(Expand(s.value, &value, nullptr));
        Set(s.var, std::move(value));
        return absl::OkStatus();
      }
      case Kind::kNumber:
        Set(s.var, absl::StrCat(s.low + static_cast<int64_t>(rng_.Below(s.high - s.low + 1))));
        return absl::OkStatus();
      case Kind::kSection:
        return absl::OkStatus();
      case Kind::kSay: {
        int64_t n = s.low;
        if (s.has_chance) {
          n = rng_.Chance(s.chance_num, s.chance_den) ? 1 : 0;
        } else if (s.low != s.high) {
          n = s.low + static_cast<int64_t>(rng_.Below(s.high - s.low + 1));
        }
        for (; n > 0; --n) MLA_RETURN_IF_ERROR(Say(s, &sections_[s.section]));
        return absl::OkStatus();
      }
      case Kind::kPad:
        for (size_t before = 0, round = 0;; ++round) {
          size_t words = 0;
          for (const std::string& sec : sections_) words += CountWordsIn(sec);
          if (words >= static_cast<size_t>(s.pad_words)) break;
          if (round > 0 && words == before) return Error(s.line, "'pad' sentence added no words");
          before = words;
          MLA_RETURN_IF_ERROR(Say(s, &sections_[s.section]));
        }
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status Let(const GrammarStatement& s) {
    const GrammarBlock& list = g_.blocks[s.block];
    const std::vector<Template>& entry = list.entries[rng_.Below(list.entries.size())];
    for (size_t f = 0; f < entry.size(); ++f) {
      std::string value;
      MLA_RETURN_IF_ERROR(Expand(entry[f], &value, nullptr));
      if (f == 0) Set(s.var, value);
      if (s.field_vars[f] != s.var) Set(s.field_vars[f], std::move(value));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Holds(const GrammarCondition& c) {
    std::string lhs, rhs;
    MLA_RETURN_IF_ERROR(Expand(c.lhs, &lhs, nullptr));
    MLA_RETURN_IF_ERROR(Expand(c.rhs, &rhs, nullptr));
    switch (c.op) {
      case GrammarCondition::Op::kEqual:
        return lhs == rhs;
      case GrammarCondition::Op::kNotEqual:
        return lhs != rhs;
      case GrammarCondition::Op::kHas: {
        std::vector<absl::string_view> have = absl::StrSplit(lhs, ' ', absl::SkipEmpty());
        for (absl::string_view want : absl::StrSplit(rhs, ' ', absl::SkipEmpty())) {
          if (std::find(have.begin(), have.end(), want) == have.end()) return false;
        }
        return true;
      }
    }
    return false;
  }

  // The block a statement or {@...} names: static, or computed from a template.
  absl::StatusOr<int> ResolveBlock(int block, const Template& name, int line,
                                   GrammarBlock::Kind want_sentence) {
    if (block >= 0) return block;
    std::string text;
    MLA_RETURN_IF_ERROR(Expand(name, &text, nullptr));
    int found = g_.FindBlock(text);
    if (found < 0) return Error(line, absl::StrCat("no block named '", text, "'"));
    bool is_sentence = g_.blocks[found].kind == GrammarBlock::Kind::kSentence;
    if (is_sentence != (want_sentence == GrammarBlock::Kind::kSentence)) {
      return Error(line, absl::StrCat("'", text, "' is ", is_sentence ? "" : "not ",
                                      "a sentence block"));
    }
    return found;
  }

  absl::Status Say(const GrammarStatement& s, std::string* out) {
    MLA_ASSIGN_OR_RETURN(int b, ResolveBlock(s.block, s.value, s.line,
                                             GrammarBlock::Kind::kSentence));
    const GrammarBlock& block = g_.blocks[b];
    size_t i = rng_.Below(block.entries.size());
    int id = block.first_frame + static_cast<int>(i);
    uint64_t frame = Combine(0, static_cast<uint64_t>(id));
    if (!out->empty()) out->push_back(' ');
    MLA_RETURN_IF_ERROR(Expand(block.entries[i][0], out, &frame));
    if (trace_ != nullptr) {
      trace_->templates.push_back(id);
      trace_->frames.push_back(frame);
    }
    return absl::OkStatus();
  }

  // Appends the expansion of `t` to `out`; the choices that shape the wording
  // (alternatives, phrases) are mixed into `frame` when it is non-null.
  absl::Status Expand(const Template& t, std::string* out, uint64_t* frame) {
    using Kind = TemplateNode::Kind;
    for (const TemplateNode& node : t) {
      switch (node.kind) {
        case Kind::kText:
          *out += node.text;
          break;
        case Kind::kVar: {
          MLA_ASSIGN_OR_RETURN(const std::string* v, Get(node.var, node.line));
          if (v->empty()) break;
          if (node.article) {
            char c = absl::ascii_tolower(static_cast<unsigned char>((*v)[0]));
            bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
            *out += vowel ? "an " : "a ";
          }
          size_t at = out->size();
          *out += *v;
          if (node.capitalize) {
            (*out)[at] = absl::ascii_toupper(static_cast<unsigned char>((*out)[at]));
          }
          break;
        }
        case Kind::kAlt: {
          size_t pick = rng_.Below(node.alts.size());
          if (frame != nullptr) *frame = Combine(*frame, pick + 1);
          MLA_RETURN_IF_ERROR(Expand(node.alts[pick], out, frame));
          break;
        }
        case Kind::kPick: {
          static const Template kNoName;
          MLA_ASSIGN_OR_RETURN(
              int b, ResolveBlock(node.list, node.alts.empty() ? kNoName : node.alts[0],
                                  node.line, GrammarBlock::Kind::kList));
          const GrammarBlock& block = g_.blocks[b];
          size_t pick = rng_.Below(block.entries.size());
          // A phrase's wording is part of the frame; a list entry is a value.
          bool phrase = block.kind == GrammarBlock::Kind::kPhrase;
          if (phrase && frame != nullptr) {
            *frame = Combine(Combine(*frame, 0x100000000ull + static_cast<uint64_t>(b)), pick);
          }
          MLA_RETURN_IF_ERROR(Expand(block.entries[pick][0], out, phrase ? frame : nullptr));
          break;
        }
        case Kind::kNumber: {
          MLA_ASSIGN_OR_RETURN(const std::string* v, Get(node.var, node.line));
          int64_t n = 0;
          if (!absl::SimpleAtoi(*v, &n)) {
            return Error(node.line, absl::StrCat("'{#", node.text, "}': '", *v,
                                                 "' is not a number"));
          }
          n += node.offset;
          const GrammarBlock& words = g_.blocks[node.list];
          if (n < 0 || n >= static_cast<int64_t>(words.entries.size())) {
            return Error(node.line, absl::StrCat("'{#", node.text, "}' is ", n,
                                                 ", outside number_words (0..",
                                                 words.entries.size() - 1, ")"));
          }
          MLA_RETURN_IF_ERROR(Expand(words.entries[n][0], out, nullptr));
          break;
        }
      }
    }
    return absl::OkStatus();
  }

  const StoryGrammar& g_;
  SplitMix64 rng_;
  StoryTrace* trace_;
  std::vector<std::string> vars_;
  std::vector<bool> is_set_;
  std::vector<std::string> sections_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StoryGenerator>> StoryGenerator::Create(absl::string_view spec) {
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<const StoryGrammar> grammar, LoadStoryGrammar(spec));
  return FromGrammar(std::move(grammar));
}

absl::StatusOr<std::unique_ptr<StoryGenerator>> StoryGenerator::FromGrammar(
    std::unique_ptr<const StoryGrammar> grammar) {
  std::unique_ptr<StoryGenerator> generator(new StoryGenerator(std::move(grammar)));
  for (uint64_t s = 0; s < kCheckStories; ++s) {
    MLA_RETURN_IF_ERROR(generator->Generate(s, nullptr).status());
  }
  return generator;
}

absl::StatusOr<std::string> StoryGenerator::Generate(uint64_t stream_seed,
                                                     StoryTrace* trace) const {
  if (trace != nullptr) {
    trace->templates.clear();
    trace->frames.clear();
  }
  return StoryWriter(*grammar_, stream_seed, trace).Run();
}

absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         const StoryOptions& options,
                                                         StoryCorpusStats* stats) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("story count must be > 0, got ", count));
  }
  if (options.threads <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be > 0, got ", options.threads));
  }
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<StoryGenerator> generator,
                       StoryGenerator::Create(options.grammar));
  std::vector<std::string> stories(static_cast<size_t>(count));
  // Story i comes from stream (seed, i); threads split the index range, so the
  // corpus is the same for any thread count.
  unsigned threads = static_cast<unsigned>(options.threads);
  struct Used {
    absl::flat_hash_set<int> templates;
    absl::flat_hash_set<uint64_t> frames;
    absl::Status status;
    void Add(const StoryTrace& t) {
      templates.insert(t.templates.begin(), t.templates.end());
      frames.insert(t.frames.begin(), t.frames.end());
    }
  };
  std::vector<Used> used(threads);
  auto work = [&](unsigned t) {
    StoryTrace trace;
    for (int64_t i = t; i < count; i += threads) {
      absl::StatusOr<std::string> s =
          generator->Generate(MixSeed(seed, static_cast<uint64_t>(i)), &trace);
      if (!s.ok()) {
        used[t].status = s.status();
        return;
      }
      stories[i] = *std::move(s);
      used[t].Add(trace);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
  for (const Used& u : used) MLA_RETURN_IF_ERROR(u.status);

  // A repeated story is redrawn from further streams of its index, in index
  // order, so the result does not depend on timing.
  absl::flat_hash_set<uint64_t> seen;
  seen.reserve(stories.size());
  StoryTrace trace;
  for (int64_t i = 0; i < count; ++i) {
    for (uint64_t attempt = 1;; ++attempt) {
      const std::string& s = stories[i];
      if (seen.insert(Fnv1a64(s.data(), s.size())).second) break;
      MLA_ASSIGN_OR_RETURN(stories[i],
                           generator->Generate(MixSeed(MixSeed(seed, static_cast<uint64_t>(i)),
                                                       attempt),
                                               &trace));
      used[0].Add(trace);
    }
  }
  if (stats != nullptr) {
    for (size_t t = 1; t < used.size(); ++t) {
      used[0].templates.insert(used[t].templates.begin(), used[t].templates.end());
      used[0].frames.insert(used[t].frames.begin(), used[t].frames.end());
    }
    CountWords(stories, stats);
    stats->distinct_templates = static_cast<int64_t>(used[0].templates.size());
    stats->available_templates = generator->grammar().frame_count;
    stats->distinct_frames = static_cast<int64_t>(used[0].frames.size());
  }
  return stories;
}

absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         StoryCorpusStats* stats) {
  return GenerateStories(count, seed, StoryOptions{}, stats);
}

void CountWords(const std::vector<std::string>& stories, StoryCorpusStats* stats) {
  absl::flat_hash_set<std::string> vocab;
  stats->stories = static_cast<int64_t>(stories.size());
  stats->words = 0;
  std::vector<int64_t> lengths;
  lengths.reserve(stories.size());
  std::string word;
  for (const std::string& s : stories) {
    int64_t n = static_cast<int64_t>(CountWordsIn(s));
    stats->words += n;
    lengths.push_back(n);
    for (char c : s) {
      if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '\'' || c == '-') {
        word.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
      } else if (!word.empty()) {
        vocab.insert(word);
        word.clear();
      }
    }
    if (!word.empty()) {
      vocab.insert(word);
      word.clear();
    }
  }
  stats->distinct_words = static_cast<int64_t>(vocab.size());
  std::sort(lengths.begin(), lengths.end());
  size_t n = lengths.size();
  stats->min_words = n == 0 ? 0 : lengths.front();
  stats->max_words = n == 0 ? 0 : lengths.back();
  stats->median_words = n == 0 ? 0 : lengths[n / 2];
  stats->p90_words = n == 0 ? 0 : lengths[std::min(n - 1, n * 9 / 10)];
}

}  // namespace mla
