#include "runtime/data/story_grammar.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "runtime/data/story_grammar_builtin.h"

namespace mla {

int StoryGrammar::FindBlock(absl::string_view name) const {
  auto it = block_index.find(name);
  return it == block_index.end() ? -1 : it->second;
}

namespace {

constexpr char kNumberWords[] = "number_words";
constexpr int kMaxCallDepth = 16;

struct Line {
  int number = 0;
  std::string text;  // without indentation and trailing spaces
};

// A block as read, before its templates are compiled.
struct RawBlock {
  std::string keyword;  // list, phrase, sentence, proc, story
  std::string name;
  std::vector<std::string> fields;
  Line header;
  std::vector<Line> lines;
};

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

bool IsName(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

// Splits `text` at `sep` outside braces; error on unbalanced braces.
absl::StatusOr<std::vector<std::string>> SplitTopLevel(absl::string_view text, char sep) {
  std::vector<std::string> parts(1);
  int depth = 0;
  for (char c : text) {
    if (c == '{') ++depth;
    if (c == '}' && --depth < 0) return absl::InvalidArgumentError("unmatched '}'");
    if (c == sep && depth == 0) {
      parts.emplace_back();
    } else {
      parts.back().push_back(c);
    }
  }
  if (depth != 0) return absl::InvalidArgumentError("unmatched '{'");
  for (std::string& p : parts) p = std::string(absl::StripAsciiWhitespace(p));
  return parts;
}

class Parser {
 public:
  Parser(absl::string_view source, StoryGrammar* g) : source_(source), g_(g) {}

  absl::Status Parse(absl::string_view text) {
    MLA_RETURN_IF_ERROR(ReadBlocks(text));
    MLA_RETURN_IF_ERROR(DeclareBlocks());
    if (story_ == nullptr) return Error(last_line_, "no 'story' block");
    // Variables are named by the story's statements (including the
    // procedures they call), so collect them before compiling any template.
    MLA_RETURN_IF_ERROR(CollectVariables(story_->lines, "", 0));
    MLA_RETURN_IF_ERROR(CompileBlocks());
    return CompileStatements(story_->lines, "", 0, &g_->story);
  }

 private:
  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", line, ": ", what));
  }

  absl::Status ReadBlocks(absl::string_view text) {
    std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
    bool header_seen = false;
    for (size_t i = 0; i < lines.size(); ++i) {
      int number = static_cast<int>(i) + 1;
      absl::string_view raw = absl::StripTrailingAsciiWhitespace(lines[i]);
      absl::string_view stripped = absl::StripLeadingAsciiWhitespace(raw);
      if (stripped.empty() || stripped[0] == '#') continue;
      last_line_ = number;
      bool indented = stripped.size() != raw.size();
      if (!header_seen) {
        if (indented || stripped != "grammar 1") {
          return Error(number, "a grammar file starts with the line 'grammar 1' (format version)");
        }
        header_seen = true;
        continue;
      }
      if (indented) {
        if (raw_.empty()) return Error(number, "indented line outside any block");
        raw_.back().lines.push_back({number, std::string(stripped)});
        continue;
      }
      MLA_RETURN_IF_ERROR(ReadHeader(number, stripped));
    }
    if (!header_seen) return Error(1, "empty grammar (expected the line 'grammar 1')");
    return absl::OkStatus();
  }

  absl::Status ReadHeader(int number, absl::string_view text) {
    RawBlock b;
    b.header = {number, std::string(text)};
    std::pair<absl::string_view, absl::string_view> kw =
        absl::StrSplit(text, absl::MaxSplits(' ', 1));
    b.keyword = std::string(kw.first);
    absl::string_view rest = absl::StripAsciiWhitespace(kw.second);
    if (b.keyword == "story") {
      if (!rest.empty()) return Error(number, "'story' takes no name");
      if (story_seen_) return Error(number, "second 'story' block");
      story_seen_ = true;
    } else if (b.keyword == "list") {
      std::pair<absl::string_view, absl::string_view> nf =
          absl::StrSplit(rest, absl::MaxSplits(':', 1));
      b.name = std::string(absl::StripAsciiWhitespace(nf.first));
      for (absl::string_view f : absl::StrSplit(nf.second, ' ', absl::SkipWhitespace())) {
        if (!IsName(f) || absl::StrContains(f, '.')) {
          return Error(number, absl::StrCat("bad field name '", f, "'"));
        }
        b.fields.emplace_back(f);
      }
      if (absl::StrContains(rest, ':') && b.fields.empty()) {
        return Error(number, "a list with ':' names at least one field");
      }
    } else if (b.keyword == "phrase" || b.keyword == "sentence" || b.keyword == "proc") {
      b.name = std::string(rest);
    } else {
      return Error(number, absl::StrCat("unknown block '", b.keyword,
                                        "' (expected list, phrase, sentence, proc or story)"));
    }
    if (b.keyword != "story" && !IsName(b.name)) {
      return Error(number, absl::StrCat("bad or missing name after '", b.keyword, "'"));
    }
    raw_.push_back(std::move(b));
    return absl::OkStatus();
  }

  // Gives every list, phrase and sentence block its index, so templates can
  // name blocks that come later in the file.
  absl::Status DeclareBlocks() {
    for (RawBlock& b : raw_) {
      if (b.lines.empty()) {
        return Error(b.header.number, absl::StrCat("'", b.header.text, "' has no lines"));
      }
      if (b.keyword == "story") {
        story_ = &b;
        continue;
      }
      if (b.keyword == "proc") {
        if (!procs_.emplace(b.name, &b).second) {
          return Error(b.header.number, absl::StrCat("second procedure '", b.name, "'"));
        }
        continue;
      }
      if (g_->block_index.contains(b.name)) {
        return Error(b.header.number, absl::StrCat("second block named '", b.name, "'"));
      }
      GrammarBlock block;
      block.kind = b.keyword == "list"     ? GrammarBlock::Kind::kList
                   : b.keyword == "phrase" ? GrammarBlock::Kind::kPhrase
                                           : GrammarBlock::Kind::kSentence;
      block.name = b.name;
      block.line = b.header.number;
      block.fields = b.fields.empty() ? std::vector<std::string>{""} : b.fields;
      g_->block_index[b.name] = static_cast<int>(g_->blocks.size());
      g_->blocks.push_back(std::move(block));
    }
    return absl::OkStatus();
  }

  absl::Status CompileBlocks() {
    size_t next = 0;
    for (const RawBlock& b : raw_) {
      if (b.keyword == "story" || b.keyword == "proc") continue;
      GrammarBlock& block = g_->blocks[next++];
      for (const Line& line : b.lines) {
        std::vector<std::string> entries;
        if (block.kind != GrammarBlock::Kind::kSentence) {
          auto split = SplitTopLevel(line.text, '|');
          if (!split.ok()) return Error(line.number, split.status().message());
          entries = *std::move(split);
        } else {
          entries = {line.text};
        }
        for (const std::string& entry : entries) {
          std::vector<std::string> fields = {entry};
          if (block.kind == GrammarBlock::Kind::kList) {
            MLA_ASSIGN_OR_RETURN(fields, SplitTopLevel(entry, ';'));
          }
          if (fields.size() != block.fields.size()) {
            return Error(line.number,
                         absl::StrCat("entry '", entry, "' has ", fields.size(), " fields; list '",
                                      block.name, "' has ", block.fields.size(), " (",
                                      absl::StrJoin(block.fields, " "), ")"));
          }
          if (block.fields.size() == 1 && fields[0].empty()) {
            return Error(line.number, absl::StrCat("empty entry in '", block.name, "'"));
          }
          std::vector<Template> compiled(fields.size());
          for (size_t f = 0; f < fields.size(); ++f) {
            MLA_RETURN_IF_ERROR(Compile(fields[f], line.number, &compiled[f]));
          }
          block.entries.push_back(std::move(compiled));
        }
      }
      if (block.kind == GrammarBlock::Kind::kSentence) {
        block.first_frame = g_->frame_count;
        g_->frame_count += static_cast<int>(block.entries.size());
      }
    }
    return absl::OkStatus();
  }

  // --- Templates ---

  int VariableId(absl::string_view name) const {
    auto it = var_index_.find(name);
    return it == var_index_.end() ? -1 : it->second;
  }

  absl::Status Compile(absl::string_view text, int line, Template* out) {
    size_t i = 0;
    while (i < text.size()) {
      if (text[i] == '}') return Error(line, "unmatched '}'");
      if (text[i] != '{') {
        size_t j = text.find_first_of("{}", i);
        if (j == absl::string_view::npos) j = text.size();
        TemplateNode node;
        node.kind = TemplateNode::Kind::kText;
        node.line = line;
        node.text = std::string(text.substr(i, j - i));
        out->push_back(std::move(node));
        i = j;
        continue;
      }
      int depth = 0;
      size_t j = i;
      std::vector<size_t> bars;
      for (; j < text.size(); ++j) {
        if (text[j] == '{') ++depth;
        if (text[j] == '}' && --depth == 0) break;
        if (text[j] == '|' && depth == 1) bars.push_back(j);
      }
      if (j == text.size()) return Error(line, "unmatched '{'");
      TemplateNode node;
      node.line = line;
      if (!bars.empty()) {
        node.kind = TemplateNode::Kind::kAlt;
        bars.push_back(j);
        size_t from = i + 1;
        for (size_t bar : bars) {
          node.alts.emplace_back();
          MLA_RETURN_IF_ERROR(Compile(text.substr(from, bar - from), line, &node.alts.back()));
          from = bar + 1;
        }
      } else {
        MLA_RETURN_IF_ERROR(CompilePlaceholder(text.substr(i + 1, j - i - 1), line, &node));
      }
      out->push_back(std::move(node));
      i = j + 1;
    }
    return absl::OkStatus();
  }

  absl::Status CompilePlaceholder(absl::string_view inner, int line, TemplateNode* node) {
    if (inner.empty()) return Error(line, "empty '{}'");
    if (inner[0] == '@') {
      node->kind = TemplateNode::Kind::kPick;
      absl::string_view name = inner.substr(1);
      if (absl::StrContains(name, '{')) {
        node->alts.emplace_back();
        return Compile(name, line, &node->alts.back());
      }
      node->list = g_->FindBlock(name);
      if (node->list < 0) return Error(line, absl::StrCat("unknown list or phrase '", name, "'"));
      if (g_->blocks[node->list].kind == GrammarBlock::Kind::kSentence) {
        return Error(line, absl::StrCat("'", name, "' is a sentence block; use 'say'"));
      }
      return absl::OkStatus();
    }
    if (inner[0] == '#') {
      node->kind = TemplateNode::Kind::kNumber;
      absl::string_view name = inner.substr(1);
      size_t sign = name.find_first_of("+-");
      if (sign != absl::string_view::npos) {
        int k = 0;
        if (!absl::SimpleAtoi(name.substr(sign + 1), &k)) {
          return Error(line, absl::StrCat("bad number offset in '{", inner, "}'"));
        }
        node->offset = name[sign] == '-' ? -k : k;
        name = name.substr(0, sign);
      }
      node->list = g_->FindBlock(kNumberWords);
      if (node->list < 0) {
        return Error(line, absl::StrCat("'{", inner, "}' needs a list named ", kNumberWords));
      }
      node->text = std::string(name);
      node->var = VariableId(name);
      if (node->var < 0) return Error(line, absl::StrCat("unknown variable '", name, "'"));
      return absl::OkStatus();
    }
    node->kind = TemplateNode::Kind::kVar;
    absl::string_view name = inner;
    if (name.size() > 2 && absl::StartsWith(name, "a_")) {
      node->article = true;
      name = name.substr(2);
    }
    if (!IsName(name)) return Error(line, absl::StrCat("bad placeholder '{", inner, "}'"));
    node->text = std::string(name);
    node->var = VariableId(name);
    if (node->var < 0) {
      // {He} is {he} with a capital letter (the last name part is capitalised).
      std::string lower(name);
      size_t last = lower.rfind('.');
      last = last == std::string::npos ? 0 : last + 1;
      if (last < lower.size() && absl::ascii_isupper(static_cast<unsigned char>(lower[last]))) {
        lower[last] = absl::ascii_tolower(static_cast<unsigned char>(lower[last]));
        node->var = VariableId(lower);
        node->capitalize = node->var >= 0;
      }
    }
    if (node->var < 0) {
      return Error(line, absl::StrCat("unknown variable '{", inner,
                                      "}' (no let, set or number statement assigns it)"));
    }
    return absl::OkStatus();
  }

  // --- Statements ---

  int DeclareVariable(const std::string& name) {
    auto [it, added] = var_index_.emplace(name, static_cast<int>(g_->variables.size()));
    if (added) g_->variables.push_back(name);
    return it->second;
  }

  // Splits "X until COND" into X and COND.
  static std::pair<std::string, std::string> SplitUntil(absl::string_view text) {
    size_t at = text.find(" until ");
    if (at == absl::string_view::npos) return {std::string(text), ""};
    return {std::string(absl::StripAsciiWhitespace(text.substr(0, at))),
            std::string(absl::StripAsciiWhitespace(text.substr(at + 7)))};
  }

  // Reads "NAME = VALUE" after a let/set/number keyword.
  absl::Status Assignment(const Line& line, absl::string_view rest, std::string* name,
                          std::string* value) const {
    size_t eq = rest.find(" = ");
    if (eq == absl::string_view::npos) return Error(line.number, "expected 'NAME = VALUE'");
    *name = std::string(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    *value = std::string(absl::StripAsciiWhitespace(rest.substr(eq + 3)));
    if (!IsName(*name)) return Error(line.number, absl::StrCat("bad variable name '", *name, "'"));
    if (value->empty()) return Error(line.number, "missing value after '='");
    return absl::OkStatus();
  }

  absl::StatusOr<const RawBlock*> Proc(int line, absl::string_view name, int depth) const {
    auto it = procs_.find(name);
    if (it == procs_.end()) return Error(line, absl::StrCat("unknown procedure '", name, "'"));
    if (depth >= kMaxCallDepth) {
      return Error(line, absl::StrCat("procedure calls nest deeper than ", kMaxCallDepth,
                                      " (recursion?)"));
    }
    return it->second;
  }

  // A statement line with `$` replaced by the procedure's argument.
  static Line Instantiate(const Line& line, absl::string_view arg) {
    return {line.number, absl::StrReplaceAll(line.text, {{"$", arg}})};
  }

  absl::Status CollectVariables(const std::vector<Line>& lines, absl::string_view arg,
                                int depth) {
    for (const Line& raw : lines) {
      Line line = Instantiate(raw, arg);
      std::pair<absl::string_view, absl::string_view> kw =
          absl::StrSplit(line.text, absl::MaxSplits(' ', 1));
      std::string name, value;
      if (kw.first == "let" || kw.first == "set" || kw.first == "number") {
        MLA_RETURN_IF_ERROR(Assignment(line, SplitUntil(kw.second).first, &name, &value));
        DeclareVariable(name);
        if (kw.first == "let") {
          int list = g_->FindBlock(value);
          if (list < 0 || g_->blocks[list].kind != GrammarBlock::Kind::kList) {
            return Error(line.number, absl::StrCat("'let' needs a list; '", value, "' is not one"));
          }
          for (const std::string& f : g_->blocks[list].fields) {
            if (!f.empty()) DeclareVariable(absl::StrCat(name, ".", f));
          }
        }
      } else if (kw.first == "call") {
        std::vector<std::string> words =
            absl::StrSplit(SplitUntil(kw.second).first, ' ', absl::SkipWhitespace());
        if (words.size() != 2) return Error(line.number, "expected 'call PROC ARG'");
        MLA_ASSIGN_OR_RETURN(const RawBlock* proc, Proc(line.number, words[0], depth));
        MLA_RETURN_IF_ERROR(CollectVariables(proc->lines, words[1], depth + 1));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CompileCondition(const Line& line, absl::string_view text, GrammarCondition* c) {
    struct OpName {
      const char* text;
      GrammarCondition::Op op;
    };
    for (OpName o : {OpName{" != ", GrammarCondition::Op::kNotEqual},
                     OpName{" == ", GrammarCondition::Op::kEqual},
                     OpName{" has ", GrammarCondition::Op::kHas}}) {
      size_t at = text.find(o.text);
      if (at == absl::string_view::npos) continue;
      c->op = o.op;
      MLA_RETURN_IF_ERROR(Compile(absl::StripAsciiWhitespace(text.substr(0, at)), line.number,
                                  &c->lhs));
      return Compile(absl::StripAsciiWhitespace(text.substr(at + strlen(o.text))), line.number,
                     &c->rhs);
    }
    return Error(line.number, absl::StrCat("bad condition '", text, "' (A == B, A != B, A has B)"));
  }

  // "NAME" or a name template -> a static sentence index or a dynamic template.
  absl::Status SentenceRef(const Line& line, absl::string_view name, GrammarStatement* s) {
    if (absl::StrContains(name, '{')) return Compile(name, line.number, &s->value);
    s->block = g_->FindBlock(name);
    if (s->block < 0 || g_->blocks[s->block].kind != GrammarBlock::Kind::kSentence) {
      return Error(line.number, absl::StrCat("unknown sentence block '", name, "'"));
    }
    return absl::OkStatus();
  }

  int SectionId(absl::string_view name) const {
    for (size_t i = 0; i < g_->sections.size(); ++i) {
      if (g_->sections[i] == name) return static_cast<int>(i);
    }
    return -1;
  }

  static bool ParseRange(absl::string_view text, int64_t* low, int64_t* high) {
    std::pair<absl::string_view, absl::string_view> r = absl::StrSplit(text, absl::MaxSplits("..", 1));
    return absl::SimpleAtoi(r.first, low) && absl::SimpleAtoi(r.second, high) && *low >= 0 &&
           *low <= *high;
  }

  absl::Status CompileStatements(const std::vector<Line>& lines, absl::string_view arg, int depth,
                                 std::vector<GrammarStatement>* out) {
    for (const Line& raw : lines) {
      Line line = Instantiate(raw, arg);
      GrammarStatement s;
      s.line = line.number;
      std::pair<absl::string_view, absl::string_view> kw =
          absl::StrSplit(line.text, absl::MaxSplits(' ', 1));
      absl::string_view rest = absl::StripAsciiWhitespace(kw.second);
      std::string name, value;
      if (kw.first == "let" || kw.first == "call") {
        auto [what, until] = SplitUntil(rest);
        if (!until.empty()) {
          s.has_until = true;
          MLA_RETURN_IF_ERROR(CompileCondition(line, until, &s.until));
        }
        if (kw.first == "let") {
          s.kind = GrammarStatement::Kind::kLet;
          MLA_RETURN_IF_ERROR(Assignment(line, what, &name, &value));
          s.var = VariableId(name);
          s.block = g_->FindBlock(value);
          for (const std::string& f : g_->blocks[s.block].fields) {
            s.field_vars.push_back(f.empty() ? s.var : VariableId(absl::StrCat(name, ".", f)));
          }
        } else {
          s.kind = GrammarStatement::Kind::kCall;
          std::vector<std::string> words = absl::StrSplit(what, ' ', absl::SkipWhitespace());
          MLA_ASSIGN_OR_RETURN(const RawBlock* proc, Proc(line.number, words[0], depth));
          MLA_RETURN_IF_ERROR(CompileStatements(proc->lines, words[1], depth + 1, &s.body));
        }
      } else if (kw.first == "set") {
        s.kind = GrammarStatement::Kind::kSet;
        MLA_RETURN_IF_ERROR(Assignment(line, rest, &name, &value));
        s.var = VariableId(name);
        MLA_RETURN_IF_ERROR(Compile(value, line.number, &s.value));
      } else if (kw.first == "number") {
        s.kind = GrammarStatement::Kind::kNumber;
        MLA_RETURN_IF_ERROR(Assignment(line, rest, &name, &value));
        s.var = VariableId(name);
        if (!ParseRange(value, &s.low, &s.high)) {
          return Error(line.number, absl::StrCat("bad range '", value, "' (expected A..B, 0 <= A <= B)"));
        }
      } else if (kw.first == "section") {
        s.kind = GrammarStatement::Kind::kSection;
        if (!IsName(rest)) return Error(line.number, "expected 'section NAME'");
        s.section = SectionId(rest);
        if (s.section < 0) {
          s.section = static_cast<int>(g_->sections.size());
          g_->sections.emplace_back(rest);
        }
        current_section_ = s.section;
      } else if (kw.first == "say") {
        s.kind = GrammarStatement::Kind::kSay;
        if (current_section_ < 0) return Error(line.number, "'say' before any 'section'");
        s.section = current_section_;
        std::vector<std::string> words = absl::StrSplit(rest, ' ', absl::SkipWhitespace());
        if (words.empty() || words.size() > 2) {
          return Error(line.number, "expected 'say SENTENCE [P/Q | A..B]'");
        }
        MLA_RETURN_IF_ERROR(SentenceRef(line, words[0], &s));
        s.low = s.high = 1;
        if (words.size() == 2) {
          std::pair<absl::string_view, absl::string_view> pq =
              absl::StrSplit(words[1], absl::MaxSplits('/', 1));
          bool fraction = absl::StrContains(words[1], '/');
          s.has_chance = fraction;
          if (fraction ? !(absl::SimpleAtoi(pq.first, &s.chance_num) &&
                           absl::SimpleAtoi(pq.second, &s.chance_den) && s.chance_num >= 0 &&
                           s.chance_num <= s.chance_den && s.chance_den > 0)
                       : !ParseRange(words[1], &s.low, &s.high)) {
            return Error(line.number, absl::StrCat("bad repeat '", words[1],
                                                   "' (expected P/Q with 0 <= P <= Q, or A..B)"));
          }
        }
      } else if (kw.first == "pad") {
        s.kind = GrammarStatement::Kind::kPad;
        std::vector<std::string> w = absl::StrSplit(rest, ' ', absl::SkipWhitespace());
        if (w.size() != 6 || w[1] != "with" || w[3] != "until" || w[5] != "words" ||
            !absl::SimpleAtoi(w[4], &s.pad_words)) {
          return Error(line.number, "expected 'pad SECTION with SENTENCE until N words'");
        }
        s.section = SectionId(w[0]);
        if (s.section < 0) return Error(line.number, absl::StrCat("unknown section '", w[0], "'"));
        MLA_RETURN_IF_ERROR(SentenceRef(line, w[2], &s));
      } else {
        return Error(line.number, absl::StrCat("unknown statement '", kw.first,
                                               "' (let, set, number, call, section, say, pad)"));
      }
      out->push_back(std::move(s));
    }
    return absl::OkStatus();
  }

  std::string source_;
  StoryGrammar* g_;
  std::vector<RawBlock> raw_;
  const RawBlock* story_ = nullptr;
  bool story_seen_ = false;
  int last_line_ = 1;
  int current_section_ = -1;
  absl::flat_hash_map<std::string, const RawBlock*> procs_;
  absl::flat_hash_map<std::string, int> var_index_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<const StoryGrammar>> ParseStoryGrammar(absl::string_view text,
                                                                      absl::string_view source) {
  auto g = std::make_unique<StoryGrammar>();
  g->source = std::string(source);
  Parser parser(source, g.get());
  MLA_RETURN_IF_ERROR(parser.Parse(text));
  return std::unique_ptr<const StoryGrammar>(std::move(g));
}

std::vector<std::string> BuiltinStoryGrammarNames() {
  std::vector<std::string> names;
  for (const BuiltinGrammarFile& f : BuiltinStoryGrammars()) names.emplace_back(f.name);
  return names;
}

absl::StatusOr<absl::string_view> BuiltinStoryGrammarText(absl::string_view name) {
  for (const BuiltinGrammarFile& f : BuiltinStoryGrammars()) {
    if (name == f.name) return absl::string_view(f.text);
  }
  return absl::NotFoundError(absl::StrCat("no built-in story grammar '", name, "' (built in: ",
                                          absl::StrJoin(BuiltinStoryGrammarNames(), ", "), ")"));
}

absl::StatusOr<std::unique_ptr<const StoryGrammar>> LoadStoryGrammar(absl::string_view spec) {
  absl::StatusOr<absl::string_view> builtin = BuiltinStoryGrammarText(spec);
  if (builtin.ok()) return ParseStoryGrammar(*builtin, absl::StrCat("built-in grammar ", spec));
  std::error_code ec;
  if (std::filesystem::is_directory(std::string(spec), ec)) {
    return absl::InvalidArgumentError(absl::StrCat(spec, ": is a directory, not a story grammar"));
  }
  std::ifstream in{std::string(spec), std::ios::binary};
  if (!in) {
    return absl::NotFoundError(absl::StrCat(spec, ": cannot open story grammar: ",
                                            std::strerror(errno), " (built in: ",
                                            absl::StrJoin(BuiltinStoryGrammarNames(), ", "), ")"));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParseStoryGrammar(text, spec);
}

}  // namespace mla
