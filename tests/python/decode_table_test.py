"""tools/decode-table/decode-table on a tiny shape: the outputs' structure, the
KV bytes per token against the closed form layers × (2·d for MHA; r + rope_dim
for MLA+RoPE; r for MLA) × 4 bytes, and a rerun that keeps every measured cell
instead of measuring it again.

Run by ctest as `python3 decode_table_test.py BUILD_DIR` (label `python`):
two variants (MHA and MLA+RoPE r = d/4), one context of 24 tokens, batches 1
and 2, 2 layers of d = 32, 4 timed steps — a few seconds, most of it the
roofline's bandwidth and peak measurements in each mla-eval run.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOOL = os.path.join(ROOT, "tools", "decode-table", "decode-table")
BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_BINARY_DIR"]

LAYERS, D, HEADS, VOCAB, ROPE, CONTEXT = 2, 32, 4, 64, 4, 24
FLAGS = [f"--build={BUILD}", "--variants=mha,mla_rope_d4", f"--contexts={CONTEXT}",
         "--batches=1,2", f"--layers={LAYERS}", f"--d_model={D}", f"--heads={HEADS}",
         f"--vocab={VOCAB}", f"--rope_dim={ROPE}", "--bench_steps=4", "--bench_repeats=1"]


def run_tool(out, runs):
    r = subprocess.run([sys.executable, TOOL, f"--out={out}", f"--runs={runs}"] + FLAGS,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"decode-table failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


class DecodeTableTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="decode-table-test-")
        cls.out = os.path.join(cls.dir, "decode")
        cls.runs = os.path.join(cls.dir, "runs")
        cls.first = run_tool(cls.out, cls.runs)
        with open(os.path.join(cls.out, "table.json")) as f:
            cls.table = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_every_output_is_written(self):
        with open(os.path.join(self.out, "decode.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(self.out, "table.md")) as f:
            md = f.read()
        self.assertIn(f"| mha | — | - | fp32 | {LAYERS * 2 * D * 4:,} |", md)
        self.assertIn("context_length is set to each cell's context", md)
        self.assertRegex(md, r"bf16: (measured|not supported yet)")
        self.assertIn("mla_rope_d4 absorbed / mha", md)

    def test_cells_cover_variants_batches_and_modes(self):
        got = sorted((c["variant"], c["decode"], c["batch"], c["context"], c["precision"])
                     for c in self.table["cells"] if c["precision"] == "fp32")
        want = sorted([("mha", "-", b, CONTEXT, "fp32") for b in (1, 2)] +
                      [("mla_rope_d4", m, b, CONTEXT, "fp32")
                       for m in ("absorbed", "naive") for b in (1, 2)])
        self.assertEqual(got, want)
        for c in self.table["cells"]:
            self.assertGreater(c["decode_tokens_per_s"], 0)
            self.assertIn(c["bound"], ("memory", "compute"))
            self.assertAlmostEqual(c["roofline_fraction"],
                                   c["decode_tokens_per_s"] / c["roofline_tokens_per_s"])
            self.assertEqual(c["model_context_length"], CONTEXT)

    def test_kv_bytes_per_token_equal_the_closed_form(self):
        per_layer = {"mha": 2 * D, "mla_rope_d4": D // 4 + ROPE}
        for c in self.table["cells"]:
            if c["precision"] == "fp32":
                self.assertEqual(c["kv_bytes_per_token"], LAYERS * per_layer[c["variant"]] * 4,
                                 c["variant"])

    def test_a_rerun_keeps_the_measured_cells(self):
        out = run_tool(self.out, self.runs)
        self.assertEqual(out.count("kept (measured earlier)"), len(self.table["measured"]))
        self.assertNotIn("measuring", out)
        with open(os.path.join(self.out, "table.json")) as f:
            self.assertEqual(json.load(f)["cells"], self.table["cells"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
