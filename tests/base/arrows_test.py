"""The include arrows of README's layout: launch/, tools/ -> runtime/ ->
optim/, checkpoint/ -> comm/, layers/ -> base/. A part includes only itself
and the parts below it (plus third-party headers), so comm/ and optim/ never
reach into layers/, and nothing below runtime/ includes runtime/.

Run by ctest as `python3 arrows_test.py SOURCE_DIR`.
"""
import os
import re
import sys
import tempfile
import unittest

SRC = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_SOURCE_DIR"]

# part -> the project parts its files may include (besides itself).
ALLOWED = {
    "base": set(),
    "layers": {"base"},
    "comm": {"base"},
    "checkpoint": {"base"},
    "optim": {"base", "comm"},
    "runtime": {"base", "layers", "comm", "optim", "checkpoint"},
}
PARTS = {"base", "layers", "comm", "optim", "checkpoint", "runtime", "launch", "tools", "tests"}


def includes(path):
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r'\s*#\s*include\s+"([^"/]+)/', line)
            if m and m.group(1) in PARTS:
                yield n, m.group(1)


def violations(src):
    """'file:line includes part/' for every include that goes sideways or up."""
    bad = []
    for part, allowed in ALLOWED.items():
        for root, _, files in os.walk(os.path.join(src, part)):
            for name in files:
                if not name.endswith((".h", ".cc", ".cu", ".cuh")):
                    continue
                path = os.path.join(root, name)
                for n, target in includes(path):
                    if target != part and target not in allowed:
                        bad.append(f"{os.path.relpath(path, src)}:{n} includes {target}/")
    return sorted(bad)


class Arrows(unittest.TestCase):
    def test_every_part_includes_only_parts_below_it(self):
        bad = violations(SRC)
        self.assertEqual(bad, [], "\n".join(bad))

    def test_a_sideways_or_upward_include_is_found(self):
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in {"comm/a.cc": '#include "layers/cuda/cuda_check.h"\n',
                              "layers/b.h": '#include "base/json.h"\n#include "runtime/gpt_model.h"\n',
                              "optim/c.cc": '#include "comm/communicator.h"\n#include <vector>\n'}.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                with open(os.path.join(tmp, rel), "w") as f:
                    f.write(text)
            self.assertEqual(violations(tmp), ["comm/a.cc:1 includes layers/",
                                               "layers/b.h:2 includes runtime/"])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
