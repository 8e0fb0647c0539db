# Writes OUT, a C++ source defining mla::BuiltinStoryGrammars() with the text of
# each grammar file DIR/<name>.grammar for the comma-separated names in NAMES
# (run with -P at build time, so editing a grammar file rebuilds the programs).
string(REPLACE "," ";" NAMES "${NAMES}")
set(delimiter "mla_grammar_text")
set(entries "")
foreach(name IN LISTS NAMES)
  file(READ "${DIR}/${name}.grammar" text)
  string(FIND "${text}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${DIR}/${name}.grammar contains the raw-string delimiter ${delimiter}")
  endif()
  string(APPEND entries "    {\"${name}\", R\"${delimiter}(${text})${delimiter}\"},\n")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from runtime/data/grammars/*.grammar by embed_grammars.cmake.\n"
  "#include \"runtime/data/story_grammar_builtin.h\"\n\n"
  "namespace mla {\n\n"
  "std::span<const BuiltinGrammarFile> BuiltinStoryGrammars() {\n"
  "  static const BuiltinGrammarFile kGrammars[] = {\n${entries}  };\n"
  "  return kGrammars;\n}\n\n}  // namespace mla\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
