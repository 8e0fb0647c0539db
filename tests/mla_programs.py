"""What the Python suites that drive the built programs share (tests/train,
tests/fault, tests/cluster): the programs in the build folder (the suite's
first argument, else MLA_BINARY_DIR), mpirun's flags, the synthetic corpus,
mla-train's flags for a tiny model, and readers of what a run leaves behind
(metrics.jsonl, checkpoints). A suite puts tests/ on sys.path to import it.
"""
import json
import os
import subprocess
import sys

import h5py

BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_BINARY_DIR"]
TRAIN = os.path.join(BUILD, "launch", "mla-train")
CKPT = os.path.join(BUILD, "tools", "mla-ckpt", "mla-ckpt")
CALC = os.path.join(BUILD, "tools", "mla-calc", "mla-calc")
BENCH = os.path.join(BUILD, "tools", "mla-bench", "mla-bench")
DATA_TOOL = os.path.join(BUILD, "tools", "mla-data", "mla-data")
MPI_FLAGS = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])

# The end-to-end tests' run: a tiny model (2 blocks, d=32, T=32), 10 steps of
# 8 sequences.
TINY_RUN = {
    "n_layer": 2, "d_model": 32, "n_head": 4, "context_length": 32, "kv_rank": 16,
    "rope_dim": 4, "global_batch_tokens": 32 * 8, "micro_batch": 8, "steps": 10,
    "warmup_steps": 2, "lr": 3e-3, "min_lr": 3e-4, "log_interval": 1, "eval_batches": 4,
}


def make_corpus(out, count, vocab_size):
    """mla-data's synthetic corpus of `count` stories in `out`: train.bin,
    val.bin and a tokenizer.model of `vocab_size` tokens."""
    subprocess.run([DATA_TOOL, "all", "--count", str(count), "--vocab_size", str(vocab_size),
                    "--out", out], check=True, capture_output=True)


def train_flags(data, out_dir, run, **overrides):
    """mla-train's flags for an mla_rope model with the sizes and schedule of
    `run`, trained on the corpus in `data` into `out_dir` on one thread;
    `overrides` replace or add flags, and one set to None is left out."""
    flags = {
        "attention": "mla_rope", **run, "train_data": f"{data}/train.bin",
        "val_data": f"{data}/val.bin", "tokenizer": f"{data}/tokenizer.model",
        "out_dir": out_dir, "peak_gflops": 1, "threads": 1,
    }
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items() if v is not None]


def under_mpirun(cmd, ranks):
    """`cmd` as rank 0 of `ranks` under mpirun; alone when ranks is 1."""
    return ["mpirun"] + MPI_FLAGS + ["-np", str(ranks)] + cmd if ranks > 1 else cmd


def losses(out_dir):
    """{step: training loss} from the run's metrics.jsonl."""
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def params(path):
    """The checkpoint's model tensors by name."""
    with h5py.File(path, "r") as f:
        return {k: f["model"][k][...] for k in f["model"]}


def latest(out_dir):
    """The path of the run's newest committed checkpoint."""
    d = os.path.join(out_dir, "checkpoints")
    with open(os.path.join(d, "latest")) as f:
        return os.path.join(d, f.read().strip())
