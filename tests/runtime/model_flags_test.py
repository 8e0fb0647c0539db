"""runtime/model_flags.cc: every program that takes a model config defines the
same model flags, with the same help and defaults, from the schema in
runtime/model_config.h.

Run by ctest as `python3 model_flags_test.py BUILD_DIR`. The expected flag
names are the schema's rows, read from the header here; the programs' --helpfull
text must list exactly those, identically in every program.
"""
import os
import re
import subprocess
import sys
import unittest

SRC = os.environ.get("MLA_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_BINARY_DIR"]
PROGRAMS = {
    "mla-train": os.path.join(BUILD, "launch", "mla-train"),
    "mla-eval": os.path.join(BUILD, "launch", "mla-eval"),
    "mla-calc": os.path.join(BUILD, "tools", "mla-calc", "mla-calc"),
    "mla-bench": os.path.join(BUILD, "tools", "mla-bench", "mla-bench"),
}


def schema_fields():
    """(name, default) of each row of MLA_MODEL_CONFIG_FIELDS, in order."""
    with open(os.path.join(SRC, "runtime", "model_config.h")) as f:
        lines = f.read().splitlines()
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("//"))
    return re.findall(r"\bX\(\s*[\w:]+\s*,\s*(\w+)\s*,\s*([^,]+),", text)


def model_flag_section(program):
    """The --helpfull block of flags defined in runtime/model_flags.cc."""
    out = subprocess.run([program, "--helpfull"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    m = re.search(r"Flags from [^\n]*runtime/model_flags\.cc:\n(.*?)(?:\n\n|\n  Flags from |\Z)",
                  text, re.S)
    return m.group(1) if m else None


class ModelFlags(unittest.TestCase):
    def test_every_program_lists_the_schemas_fields_identically(self):
        fields = schema_fields()
        self.assertEqual(len(fields), 13, fields)
        sections = {name: model_flag_section(path) for name, path in PROGRAMS.items()}
        for name, section in sections.items():
            self.assertIsNotNone(section, f"{name} --helpfull has no model flags")
            listed = re.findall(r"^    --(\w+) ", section, re.M)
            self.assertEqual(sorted(listed), sorted(f for f, _ in fields), name)
        self.assertEqual(len(set(sections.values())), 1, "model flag help differs between programs")

    def test_help_states_the_schema_default(self):
        section = model_flag_section(PROGRAMS["mla-calc"])
        flat = re.sub(r"\s+", " ", section)
        for name, default in schema_fields():
            if "AttentionKind::k" in default:
                default = re.sub(r"(?<!^)([A-Z])", r"_\1", default.split("::k")[-1]).lower()
            default = default.rstrip("f").removesuffix(".0")
            self.assertRegex(flat, rf"--{name} \(.*?Default: {re.escape(default)}\.\)", name)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
