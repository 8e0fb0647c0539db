"""Reliability tests of the promises in docs/reliability.md that need whole
programs: outputs written safely (mla-ckpt export, config.json,
metrics.jsonl), one job per run directory, run identity at resume, and the
3-rank faults (one rank killed, one rank stopped, resume 2 -> 3 -> 2 ranks).

Run by ctest as `python3 reliability_test.py BUILD_DIR [TestClass ...]`; each
ctest entry runs one class. Models, data and helpers are fault_test.py's
(tiny: 2 blocks, T=32).
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

import fault_test as ft

ENV = ft.ENV


def setUpModule():
    ft.setUpModule()


def tearDownModule():
    ft.tearDownModule()


def tmp(name):
    return os.path.join(ft.TMP, name)


def shim_env(match, after):
    return dict(ENV, LD_PRELOAD=ft.SHIM, MLA_ENOSPC_MATCH=match, MLA_ENOSPC_AFTER=str(after))


def error_lines(stderr, prefix="mla-train: error:"):
    return [l for l in stderr.splitlines() if l.startswith(prefix)]


def loss_steps(out_dir):
    return [m["step"] for m in ft.metrics(out_dir) if "loss" in m]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def safetensors_tensor(path, name):
    """An independent safetensors reader: u64 header length, JSON, data."""
    raw = read_bytes(path)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    lo, hi = header[name]["data_offsets"]
    return np.frombuffer(raw[8 + n + lo:8 + n + hi], dtype="<f4").reshape(header[name]["shape"])


class ExportSafetyTest(unittest.TestCase):
    """mla-ckpt export never damages its input, never replaces a file
    unasked, and never leaves a partial file at --out."""

    @classmethod
    def setUpClass(cls):
        cls.run_dir = tmp("export-run")
        proc = ft.run_train(cls.run_dir, steps=2)
        assert proc.returncode == 0, proc.stderr
        cls.ckpt = ft.latest_path(cls.run_dir)

    def export(self, out, spec, *extra, env=None):
        return subprocess.run([ft.CKPT, "export", f"--out={out}", *extra, spec], capture_output=True,
                              text=True, env=env or ENV, timeout=60)

    def test_export_onto_its_own_input_is_refused_and_the_checkpoint_survives(self):
        before = read_bytes(self.ckpt)
        for spec in (self.ckpt, ft.ckpt_dir(self.run_dir)):
            for extra in ((), ("--force",)):
                proc = self.export(self.ckpt, spec, *extra)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("is the input", proc.stderr)
        # Another spelling of the same file (a symlink) is the same inode.
        link = tmp("export-link.h5")
        os.symlink(self.ckpt, link)
        proc = self.export(link, self.ckpt, "--force")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(read_bytes(self.ckpt), before)
        ft.verify(self, self.ckpt)

    def test_existing_output_is_replaced_only_with_force(self):
        out = tmp("export-existing.safetensors")
        with open(out, "w") as f:
            f.write("keep me")
        proc = self.export(out, self.ckpt)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--force", proc.stderr)
        self.assertEqual(read_bytes(out), b"keep me")
        proc = self.export(out, self.ckpt, "--force")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with h5py.File(self.ckpt, "r") as f:
            want = f["model"]["wte.weight"][...]
        np.testing.assert_array_equal(safetensors_tensor(out, "wte.weight"), want)

    def test_full_disk_during_export_leaves_no_file_at_the_final_path(self):
        self.assertTrue(os.path.exists(ft.SHIM), f"{ft.SHIM} not built")
        out = tmp("export-full.safetensors")
        proc = self.export(out, self.ckpt, env=shim_env(".safetensors.tmp", 4096))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("No space left on device (errno 28)", proc.stderr)
        self.assertIn(out, proc.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".tmp"))
        # Replacing an existing export: the old one stays whole.
        with open(out, "w") as f:
            f.write("previous export")
        proc = self.export(out, self.ckpt, "--force", env=shim_env(".safetensors.tmp", 4096))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(read_bytes(out), b"previous export")


class OutputWriteFailureTest(unittest.TestCase):
    """A failed write of config.json or metrics.jsonl ends the run non-zero,
    naming the file and the errno (through the LD_PRELOAD ENOSPC shim)."""

    def check(self, proc, name):
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = error_lines(proc.stderr)
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn(name, lines[0])
        self.assertIn("No space left on device (errno 28)", lines[0])

    def test_full_disk_on_metrics_ends_the_run_naming_the_file(self):
        out = tmp("enospc-metrics")
        proc = ft.run_train(out, steps=20, env=shim_env("metrics.jsonl", 700))
        self.check(proc, "metrics.jsonl")
        # The failed row was cut off again: every line left is whole JSON.
        self.assertLess(max(loss_steps(out), default=0), 20)

    def test_full_disk_on_config_json_ends_the_run_before_training(self):
        out = tmp("enospc-config")
        proc = ft.run_train(out, steps=20, env=shim_env("config.json", 10))
        self.check(proc, "config.json")
        self.assertFalse(os.path.exists(os.path.join(out, "config.json")))
        self.assertFalse(os.path.exists(os.path.join(out, "config.json.tmp")))
        self.assertFalse(os.path.isdir(ft.ckpt_dir(out)))


class RunDirLockTest(unittest.TestCase):
    """One mla-train job per --out_dir; readers stay allowed; the lock of a
    killed job is stale; metrics continue without duplicate steps."""

    def test_second_job_is_refused_readers_allowed_and_a_dead_holders_lock_is_stale(self):
        out = tmp("lock")
        holder = subprocess.Popen(ft.train_cmd(out, steps=100000, ckpt_every=2), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
        try:
            ft.wait_for(lambda: os.path.exists(os.path.join(ft.ckpt_dir(out), "latest")) or
                        holder.poll() is not None, 120, "a first checkpoint")
            self.assertIsNone(holder.poll(), "the first job ended early")
            second = ft.run_train(out, steps=4, resume="auto")
            self.assertNotEqual(second.returncode, 0)
            lines = error_lines(second.stderr)
            self.assertEqual(len(lines), 1, second.stderr)
            self.assertIn("in use by another mla-train job", lines[0])
            self.assertIn(f"pid {holder.pid} on host ", lines[0])
            self.assertIn("started ", lines[0])
            # Readers do not take the lock.
            ft.verify(self, ft.latest_path(out))
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(timeout=30)
        finally:
            if holder.poll() is None:
                os.killpg(holder.pid, signal.SIGKILL)
                holder.wait()
        saved = ft.ckpt_step(ft.latest_path(out))
        logged = max(loss_steps(out))
        self.assertGreaterEqual(logged, saved)
        resumed = ft.run_train(out, steps=saved + 3, resume="auto")
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn(f"at step {saved} ", resumed.stdout)
        steps = loss_steps(out)
        self.assertEqual(steps, list(range(1, saved + 4)), "duplicate or backward metrics steps")


class ResumeChangeTest(unittest.TestCase):
    """An allowed change of the global batch continues the epoch at the first
    new-size batch after the windows already used (docs/reliability.md)."""

    def test_allowed_global_batch_change_recomputes_the_data_position_and_is_logged(self):
        out = tmp("rebatch")
        proc = ft.run_train(out, steps=3)  # 8 sequences per step
        self.assertEqual(proc.returncode, 0, proc.stderr)
        first = ft.latest_path(out)
        with h5py.File(first, "r") as f:
            epoch, step, _ = (int(x) for x in f["state"]["data_loader"][...])
        refused = ft.run_train(out, steps=5, resume="auto", global_batch_tokens=32 * 12)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("global_batch_tokens: checkpoint 256; this run 384", refused.stderr)
        proc = ft.run_train(out, steps=5, resume="auto", global_batch_tokens=32 * 12,
                            allow_resume_change="global_batch_tokens")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        changes = [m for m in ft.metrics(out) if "changed" in m]
        self.assertEqual([(m["step"], m["changed"]) for m in changes], [(3, "global_batch_tokens")])
        # 3 batches of 8 windows were used: the next 12-window batch starts at
        # window 24 = batch 2 of the epoch; two steps later the loader is at 4.
        with h5py.File(ft.latest_path(out), "r") as f:
            e2, s2, _ = (int(x) for x in f["state"]["data_loader"][...])
        self.assertEqual((epoch, step), (0, 3))
        self.assertEqual((e2, s2), (0, -(-3 * 8 // 12) + 2))


class OldCheckpointTest(unittest.TestCase):
    """A checkpoint written before the run identity was recorded still
    resumes, with a warning that nothing could be compared."""

    def test_checkpoint_without_identity_resumes_with_a_warning(self):
        sys.path.insert(0, os.path.join(os.environ["MLA_SOURCE_DIR"], "tools", "python"))
        from mlatrain import checkpoint as mc
        out = tmp("old-ckpt")
        self.assertEqual(ft.run_train(out, steps=2).returncode, 0)
        old = tmp("old-ckpt.h5")
        shutil.copy(ft.latest_path(out), old)
        with h5py.File(old, "r+") as f:
            keys = [k for k in f["config"].attrs if k.startswith("identity.")]
            self.assertEqual(len(keys), 5, keys)
            for k in keys:
                del f["config"].attrs[k]
        mc.seal(old)
        ft.verify(self, old)
        proc = ft.run_train(tmp("old-ckpt-resumed"), steps=3, resume=old)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("records no run identity", proc.stderr)
        self.assertIn("at step 2 ", proc.stdout)


def three_rank_flags(**overrides):
    # 12 sequences per step split over 2 ranks (6 each, accumulation 3) or 3
    # ranks (4 each, accumulation 2).
    return dict(dict(global_batch_tokens=32 * 12, micro_batch=2), **overrides)


@contextlib.contextmanager
def three_rank_job(test, out, min_steps, **overrides):
    """`mpirun -np 3 mla-train` running past `min_steps` logged steps: yields
    the mpirun process and {rank: pid}; the job is killed on the way out if
    it still runs."""
    proc = subprocess.Popen(ft.train_cmd(out, ranks=3, **three_rank_flags(**overrides)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        ft.wait_for(lambda: ft.logged_steps(out) >= min_steps or proc.poll() is not None, 120,
                    f"{min_steps} steps")
        test.assertIsNone(proc.poll(), "the job ended before the fault")
        ranks = {ft.rank_of(p): p for p in ft.children(proc.pid)}
        test.assertEqual(sorted(ranks), [0, 1, 2], ranks)
        yield proc, ranks
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class ThreeRankKillTest(unittest.TestCase):
    def test_killing_one_of_three_ranks_ends_the_job_and_resume_works(self):
        out = tmp("kill3")
        with three_rank_job(self, out, 5, steps=400, ckpt_every=3) as (proc, ranks):
            t0 = time.time()
            os.kill(ranks[2], signal.SIGKILL)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.fail("the job hung for 30 s after one of 3 ranks was killed")
        self.assertNotEqual(proc.returncode, 0)
        ft.wait_for(lambda: not any(ft.alive(p) for p in ranks.values()),
                    max(0.0, t0 + 30 - time.time()), "every rank to end")
        saved = ft.ckpt_step(ft.latest_path(out))
        ft.verify(self, ft.latest_path(out))
        proc = ft.run_train(out, ranks=3, resume="auto", **three_rank_flags(steps=saved + 2))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"at step {saved} ", proc.stdout)


class ThreeRankStopTest(unittest.TestCase):
    """SIGSTOP on one of 3 ranks: the live ranks name it within
    --collective_timeout + 10 s and the job ends non-zero."""

    TIMEOUT_S = 10

    def test_a_stopped_rank_is_named_within_the_collective_timeout(self):
        out = tmp("stop3")
        with three_rank_job(self, out, 3, steps=100000,
                            collective_timeout=self.TIMEOUT_S) as (proc, ranks):
            t0 = time.time()
            os.kill(ranks[1], signal.SIGSTOP)
            try:
                _, stderr = proc.communicate(timeout=self.TIMEOUT_S + 10)
            except subprocess.TimeoutExpired:
                self.fail(f"no end within --collective_timeout={self.TIMEOUT_S} + 10 s")
            elapsed = time.time() - t0
        print(f"stop3: job ended {elapsed:.2f} s after SIGSTOP, exit {proc.returncode}; stderr:\n"
              f"{stderr.strip()}", flush=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(stderr, r"no progress for \d+ s .*silent: rank 1\b")
        # The job's end takes every rank with it, the stopped one included.
        ft.wait_for(lambda: not any(ft.alive(p) for p in ranks.values()), 10, "every rank to end")


class ThreeRankResumeTest(unittest.TestCase):
    def test_resume_two_then_three_then_two_ranks_matches_an_uninterrupted_run(self):
        # Every run schedules the same 9 steps (the learning rate depends on
        # the total); each resumes from the previous one's checkpoint.
        a, b, c = tmp("r232-2"), tmp("r232-3"), tmp("r232-2again")
        common = three_rank_flags(steps=9, ckpt_every=3, ckpt_keep_last=5)
        self.assertEqual(ft.run_train(a, ranks=2, **common).returncode, 0)
        proc = ft.run_train(b, ranks=3, resume=os.path.join(ft.ckpt_dir(a), "ckpt-3.h5"), **common)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = ft.run_train(c, ranks=2, resume=os.path.join(ft.ckpt_dir(b), "ckpt-6.h5"), **common)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        la = {m["step"]: m["loss"] for m in ft.metrics(a) if "loss" in m}
        lb = {m["step"]: m["loss"] for m in ft.metrics(b) if "loss" in m}
        lc = {m["step"]: m["loss"] for m in ft.metrics(c) if "loss" in m}
        self.assertEqual((sorted(lb), sorted(lc)), (list(range(4, 10)), list(range(7, 10))))
        # Float summation order differs between 2 and 3 ranks, nothing else.
        for s in range(4, 7):
            self.assertLessEqual(abs(la[s] - lb[s]), 1e-4 * abs(la[s]), f"3 ranks, step {s}")
        for s in range(7, 10):
            self.assertLessEqual(abs(la[s] - lc[s]), 1e-4 * abs(la[s]), f"2 ranks again, step {s}")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:])
