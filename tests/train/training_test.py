"""End-to-end tests of mla-train: data parallelism, ZeRO-1, accumulation,
learning, failure on one rank, and checkpoint resume at any world size.

Run by ctest as `python3 training_test.py BUILD_DIR`. Each test trains a tiny
model (2 blocks, d=32, T=32) on a small synthetic corpus made once per run.

Tolerances: the issue fixes 1e-5 relative for losses and 1e-5 for parameters
when the two runs differ only in how the same global batch is split (float
summation order); resumes at the same world size must be bit-exact.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mla_programs import (MPI_FLAGS, TINY_RUN, TRAIN, latest, losses, make_corpus,  # noqa: E402
                          params, train_flags, under_mpirun)

TMP = tempfile.mkdtemp(prefix="mla-train-test-")
DATA = os.path.join(TMP, "data")


def setUpModule():
    make_corpus(DATA, 3000, 512)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def base_flags(out_dir, **overrides):
    return train_flags(DATA, out_dir, TINY_RUN, **overrides)


def run_train(out_dir, ranks=1, timeout=240, check=True, **overrides):
    cmd = under_mpirun([TRAIN] + base_flags(out_dir, **overrides), ranks)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def val_loss(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        vals = [json.loads(l)["val_loss"] for l in f if "val_loss" in l]
    return vals[-1]


def unigram_entropy_nats(shard):
    with open(shard, "rb") as f:
        raw = f.read()
    tokens = np.frombuffer(raw[64:], dtype="<u2")
    counts = np.bincount(tokens).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class DataParallelTest(unittest.TestCase):
    def assert_runs_match(self, a, b, rel=1e-5, atol=1e-5):
        la, lb = losses(a), losses(b)
        self.assertEqual(sorted(la), list(range(1, 11)))
        self.assertEqual(sorted(la), sorted(lb))
        for s in la:
            self.assertLessEqual(abs(la[s] - lb[s]), rel * abs(la[s]), f"step {s}: {la[s]} vs {lb[s]}")
        pa, pb = params(latest(a)), params(latest(b))
        self.assertEqual(sorted(pa), sorted(pb))
        for k in pa:
            np.testing.assert_allclose(pa[k], pb[k], rtol=0, atol=atol, err_msg=k)

    def test_two_ranks_match_one_rank_with_double_batch(self):
        one, two = os.path.join(TMP, "dp1"), os.path.join(TMP, "dp2")
        run_train(one, ranks=1, micro_batch=8)
        run_train(two, ranks=2, micro_batch=4)
        self.assert_runs_match(one, two)

    def test_zero1_matches_plain_data_parallel(self):
        plain, zero = os.path.join(TMP, "z0"), os.path.join(TMP, "z1")
        run_train(plain, ranks=2, micro_batch=4, zero=0)
        run_train(zero, ranks=2, micro_batch=4, zero=1)
        self.assert_runs_match(plain, zero)

    def test_accumulation_matches_one_large_batch(self):
        big, acc = os.path.join(TMP, "big"), os.path.join(TMP, "acc")
        run_train(big, micro_batch=8)
        run_train(acc, micro_batch=2)  # 4 accumulation steps of 2 sequences
        self.assert_runs_match(big, acc)


class LearningTest(unittest.TestCase):
    def test_validation_loss_falls_clearly_below_unigram_entropy(self):
        out = os.path.join(TMP, "learn")
        run_train(out, ranks=2, micro_batch=4, steps=150, lr=1e-2, min_lr=1e-3, warmup_steps=10,
                  d_model=64, log_interval=50, eval_batches=0, threads=1)
        h = unigram_entropy_nats(f"{DATA}/val.bin")
        # A model that learned only token frequencies scores H; "clearly below"
        # means at least 10% lower, which needs context to be used.
        self.assertLess(val_loss(out), 0.9 * h, f"val loss {val_loss(out)} vs unigram entropy {h}")


class FailureTest(unittest.TestCase):
    def test_bad_data_on_one_rank_ends_whole_job_with_message(self):
        out = os.path.join(TMP, "fail")
        good = [TRAIN] + base_flags(out, micro_batch=4)
        bad = [TRAIN] + base_flags(out, micro_batch=4, train_data=os.path.join(TMP, "missing.bin"))
        cmd = ["mpirun"] + MPI_FLAGS + ["-np", "1"] + good + [":", "-np", "1"] + bad
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("missing.bin", proc.stderr + proc.stdout)
        self.assertLess(time.time() - t0, 60)

    def test_invalid_flag_names_the_field(self):
        proc = run_train(os.path.join(TMP, "badflag"), check=False, n_head=5)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("n_head=5", proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, proc.stderr)


class ResumeTest(unittest.TestCase):
    def straight_and_resumed(self, tag, ranks_first, ranks_second, zero_first=0, zero_second=0,
                             **model):
        straight, split = os.path.join(TMP, f"{tag}-20"), os.path.join(TMP, f"{tag}-10+10")
        mb = lambda r: 8 // r
        run_train(straight, ranks=ranks_second, micro_batch=mb(ranks_second), steps=20,
                  zero=zero_second, **model)
        # The first half stops after 10 of 20 scheduled steps via a signal-free
        # path: a run with --steps=20 and a checkpoint at step 10 that we
        # resume from in a fresh directory.
        run_train(split, ranks=ranks_first, micro_batch=mb(ranks_first), steps=20, ckpt_every=10,
                  zero=zero_first, **model)
        resumed = os.path.join(TMP, f"{tag}-resumed")
        os.makedirs(os.path.join(resumed, "checkpoints"), exist_ok=True)
        ten = os.path.join(split, "checkpoints", "ckpt-10.h5")
        run_train(resumed, ranks=ranks_second, micro_batch=mb(ranks_second), steps=20,
                  resume=ten, zero=zero_second, **model)
        return straight, resumed

    def assert_same_losses_and_params(self, a, b):
        """Every loss run b logged and b's last parameters bit-equal to a's."""
        la, lb = losses(a), losses(b)
        for s in lb:
            self.assertEqual(la[s], lb[s], f"step {s}")
        pa, pb = params(latest(a)), params(latest(b))
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)

    def assert_resumed_bit_exact(self, a, b):
        self.assertEqual(sorted(losses(b)), list(range(11, 21)))
        self.assert_same_losses_and_params(a, b)

    def assert_resumed_losses_close(self, a, b):
        """Every loss run b logged within 1e-5 relative of a's."""
        la, lb = losses(a), losses(b)
        for s in lb:
            self.assertLessEqual(abs(la[s] - lb[s]), 1e-5 * abs(la[s]), f"step {s}")

    def test_resume_is_bit_exact_one_rank(self):
        self.assert_resumed_bit_exact(*self.straight_and_resumed("r1", 1, 1))

    def test_resume_is_bit_exact_two_ranks(self):
        self.assert_same_losses_and_params(*self.straight_and_resumed("r2", 2, 2))

    def test_resume_two_ranks_on_one_rank(self):
        self.assert_resumed_losses_close(*self.straight_and_resumed("r21", 2, 1))

    def test_resume_zero1_checkpoint_without_zero(self):
        self.assert_resumed_losses_close(
            *self.straight_and_resumed("rz", 2, 2, zero_first=1, zero_second=0))

    # kv_norm [14] and q_norm [6] leave gaps in the 16-byte-aligned parameter
    # buffer (runtime/parameter_layout.h) that the checkpoint does not hold;
    # ZeRO-1 shards and the checkpoint's slices cut through them.
    PADDED = {"latent_norm": "true", "kv_rank": 14, "q_rank": 6}

    def test_resume_is_bit_exact_with_padded_layout_and_zero1(self):
        self.assert_resumed_bit_exact(
            *self.straight_and_resumed("rp", 2, 2, zero_first=1, zero_second=1, **self.PADDED))

    def test_resume_padded_zero1_checkpoint_on_one_rank(self):
        self.assert_resumed_losses_close(
            *self.straight_and_resumed("rp1", 2, 1, zero_first=1, **self.PADDED))

    def test_sigterm_writes_checkpoint_and_exits_cleanly(self):
        out = os.path.join(TMP, "sigterm")
        cmd = [TRAIN] + base_flags(out, steps=100000, log_interval=1)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        deadline = time.time() + 60
        while time.time() < deadline:
            m = os.path.join(out, "metrics.jsonl")
            if os.path.exists(m) and len(losses(out)) >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertIn("stopped by signal", stdout)
        with h5py.File(latest(out), "r") as f:
            self.assertEqual(int(f.attrs["step"]), max(losses(out)))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
