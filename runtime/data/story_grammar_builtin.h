#pragma once
// The grammar files built into the programs (runtime/data/grammars/*.grammar),
// embedded at build time by grammars/embed_grammars.cmake so that the data
// files stay the single source and installed programs need no data directory.
#include <span>

namespace mla {

struct BuiltinGrammarFile {
  const char* name;  // "v1" for grammars/v1.grammar
  const char* text;
};

// Defined in the generated story_grammar_builtin.cc.
std::span<const BuiltinGrammarFile> BuiltinStoryGrammars();

}  // namespace mla
