#!/usr/bin/python3
"""Times what a user waits for before the first logits of a checkpoint:
GPT.from_checkpoint (integrity check of every byte, HDF5 read, module build)
and the first forward of a prompt, in this process; `import torch` and
`import mlatrain.torch` are timed apart. Prints one JSON object.

    /usr/bin/python3 tools/python/bench_load.py CHECKPOINT [--tokens 64] [--repeats 3]

The figure of docs/python.md ("load + first forward of the 30M paper-shape
checkpoint") is load_s + forward_s of the first repeat; later repeats read the
file from the page cache. Single process; --threads sets torch's thread count.
"""
import argparse
import json
import os
import sys
import time


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint file or directory")
    p.add_argument("--tokens", type=int, default=64, help="prompt length of the first forward")
    p.add_argument("--repeats", type=int, default=3, help="load + forward rounds")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    import torch
    t1 = time.perf_counter()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mlatrain.torch import GPT
    t2 = time.perf_counter()
    if a.threads:
        torch.set_num_threads(a.threads)
    rounds = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        model = GPT.from_checkpoint(a.checkpoint)
        loaded = time.perf_counter()
        tokens = torch.arange(a.tokens)[None] % model.config.vocab_size
        with torch.no_grad():
            model(tokens)
        done = time.perf_counter()
        rounds.append({"load_s": round(loaded - start, 4), "forward_s": round(done - loaded, 4),
                       "total_s": round(done - start, 4)})
    params = sum(t.numel() for t in model.parameters())
    print(json.dumps({"checkpoint": a.checkpoint, "parameters": params,
                      "attention": model.config.attention, "tokens": a.tokens,
                      "threads": torch.get_num_threads(), "import_torch_s": round(t1 - t0, 4),
                      "import_mlatrain_s": round(t2 - t1, 4), "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
