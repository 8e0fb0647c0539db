#pragma once
// A story grammar: the data the story generator expands (word lists, phrases,
// sentence frames, procedures and the story plan), parsed and compiled from
// the text format described in docs/data.md. The generator
// (runtime/data/story_generator.h) holds only the expansion engine; the
// language of the stories lives in grammar files such as
// runtime/data/grammars/v1.grammar.
//
// Parsing checks everything that can be checked without generating: block
// syntax, field counts, balanced braces, and that every statically named
// variable, list, phrase, sentence, procedure and section exists. Errors name
// the file and line ("grammar.txt:12: unknown variable {Nme}").
//
// Thread safety: a StoryGrammar is immutable after parsing.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mla {

// One piece of a compiled template.
struct TemplateNode;
using Template = std::vector<TemplateNode>;

struct TemplateNode {
  enum class Kind {
    kText,    // literal text
    kVar,     // {name}, {Name} (capitalised), {a_name} (with a/an)
    kAlt,     // {x|y|z}: one alternative, uniformly
    kPick,    // {@list}: one entry of a list or phrase block (name may hold {...})
    kNumber,  // {#name}, {#name+k}, {#name-k}: entry value(+k) of list number_words
  };
  Kind kind = Kind::kText;
  int line = 0;             // line of the template in its file (for errors)
  std::string text;         // kText; variable name for kVar / kNumber (for errors)
  int var = -1;             // kVar, kNumber
  bool capitalize = false;  // kVar
  bool article = false;     // kVar
  int offset = 0;           // kNumber
  int list = -1;            // kPick with a static name; kNumber: number_words
  std::vector<Template> alts;  // kAlt: the alternatives; kPick (dynamic): alts[0] = name
};

// A list, phrase or sentence block. Lists hold entries with named fields;
// phrase and sentence blocks hold one template per line (one field).
struct GrammarBlock {
  enum class Kind { kList, kPhrase, kSentence };
  Kind kind = Kind::kList;
  std::string name;
  int line = 0;
  std::vector<std::string> fields;             // lists: field names ("" = single field)
  std::vector<std::vector<Template>> entries;  // [entry][field]
  int first_frame = 0;                         // sentences: id of entries[0] among frames
};

struct GrammarCondition {
  enum class Op { kEqual, kNotEqual, kHas };
  Template lhs, rhs;
  Op op = Op::kEqual;
};

struct GrammarStatement {
  enum class Kind { kLet, kSet, kNumber, kCall, kSection, kSay, kPad };
  Kind kind = Kind::kSet;
  int line = 0;
  int var = -1;                 // let / set / number: target variable
  std::vector<int> field_vars;  // let: X.field of each field (X for an unnamed field)
  int block = -1;               // let: list; say / pad with a static name: sentence
  Template value;               // set: the value; say / pad: dynamic sentence name
  int64_t low = 0, high = 0;    // number: value range; say: repeat range
  bool has_chance = false;      // say P/Q: once with probability P/Q (one draw)
  int64_t chance_num = 1, chance_den = 1;
  int section = -1;             // section / say / pad
  int64_t pad_words = 0;        // pad
  std::vector<GrammarStatement> body;  // call: the procedure, instantiated
  bool has_until = false;       // let / call: repeat until the condition holds
  GrammarCondition until;
};

struct StoryGrammar {
  std::string source;  // file name (or "built-in v1") for messages
  std::vector<GrammarBlock> blocks;
  absl::flat_hash_map<std::string, int> block_index;  // name -> blocks index
  std::vector<std::string> variables;                 // id -> name
  std::vector<std::string> sections;                  // id -> name, in output order
  std::vector<GrammarStatement> story;
  int frame_count = 0;  // sentence templates in all sentence blocks

  // The block called `name`, or -1.
  int FindBlock(absl::string_view name) const;
};

// Parses grammar text; `source` names it in error messages.
absl::StatusOr<std::unique_ptr<const StoryGrammar>> ParseStoryGrammar(absl::string_view text,
                                                                      absl::string_view source);

// Names of the grammars built into the programs ("v1", "v2").
std::vector<std::string> BuiltinStoryGrammarNames();

// The text of a built-in grammar, or NotFound.
absl::StatusOr<absl::string_view> BuiltinStoryGrammarText(absl::string_view name);

// `spec` is a built-in name (v1, v2) or the path of a grammar file.
absl::StatusOr<std::unique_ptr<const StoryGrammar>> LoadStoryGrammar(absl::string_view spec);

}  // namespace mla
