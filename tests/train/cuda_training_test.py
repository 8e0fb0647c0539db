"""End-to-end tests of `mla-train --device=cuda`.

Run by ctest as `python3 cuda_training_test.py BUILD_DIR [TestClass]`. Without a visible
GPU (nvidia-smi lists none) the GPU tests skip and one test checks that
--device=cuda fails at start with a message naming the reason; the 2-rank
test needs two GPUs.

Tolerance of the first step's loss, CPU vs GPU: it depends only on the
initial parameters and the first batch, so the two differ only by float32
rounding in the forward pass: a relative error of at most about
(L + 1) · K · eps32 with K the longest reduction (the vocabulary, 512 here)
and L = 2 blocks: 3 · 512 · 1.2e-7 ≈ 1.8e-4.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mla_programs import (TINY_RUN, TRAIN, losses, make_corpus, train_flags,  # noqa: E402
                          under_mpirun)

TMP = tempfile.mkdtemp(prefix="mla-cuda-train-test-")
DATA = os.path.join(TMP, "data")
FIRST_LOSS_REL_TOL = 3 * 512 * 1.2e-7
# 2 blocks x (latent down, up, output, MLP up, MLP down) + the head.
BF16_SEQUENTIAL_GEMMS = 2 * 5 + 1


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


GPUS = gpu_count()


def setUpModule():
    make_corpus(DATA, 3000, 512)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def run_train(out_dir, ranks=1, check=True, **overrides):
    cmd = under_mpirun([TRAIN] + train_flags(DATA, out_dir, TINY_RUN, **overrides), ranks)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class WithoutGpuTest(unittest.TestCase):
    def test_device_cuda_fails_at_start_naming_the_reason(self):
        if GPUS > 0:
            self.skipTest("a GPU is visible")
        proc = run_train(os.path.join(TMP, "nogpu"), check=False, device="cuda")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--device=cuda", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(TMP, "nogpu", "checkpoints")))

    def test_bf16_on_the_cpu_is_refused(self):
        proc = run_train(os.path.join(TMP, "cpu_bf16"), check=False, precision="bf16")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--precision=bf16 is not supported with --device=cpu", proc.stderr)


class GpuTrainingTest(unittest.TestCase):
    def setUp(self):
        if GPUS == 0:
            self.skipTest("no CUDA device visible (nvidia-smi lists none)")

    def assert_first_loss_matches_cpu(self, cpu_dir, gpu_dir):
        lc, lg = losses(cpu_dir), losses(gpu_dir)
        self.assertEqual(sorted(lc), sorted(lg))
        self.assertLessEqual(abs(lc[1] - lg[1]), FIRST_LOSS_REL_TOL * lc[1], f"{lc[1]} vs {lg[1]}")
        self.assertLess(lg[max(lg)], lg[1], "the GPU run does not learn")

    def test_one_rank_trains_and_prints_the_memory_plan(self):
        cpu, gpu = os.path.join(TMP, "cpu1"), os.path.join(TMP, "gpu1")
        run_train(cpu)
        proc = run_train(gpu, device="cuda")
        self.assertIn("memory plan", proc.stdout)
        self.assertIn("total", proc.stdout)
        self.assert_first_loss_matches_cpu(cpu, gpu)
        # The checkpoint is device-neutral: the CPU resumes it.
        run_train(gpu, steps=12, resume="auto")
        self.assertEqual(sorted(losses(gpu)), list(range(1, 13)))

    def test_zero1_one_rank(self):
        cpu, gpu = os.path.join(TMP, "cpuz"), os.path.join(TMP, "gpuz")
        run_train(cpu, zero=1)
        run_train(gpu, device="cuda", zero=1)
        self.assert_first_loss_matches_cpu(cpu, gpu)

    def test_two_ranks(self):
        if GPUS < 2:
            self.skipTest("two GPUs needed")
        cpu, gpu = os.path.join(TMP, "cpu2"), os.path.join(TMP, "gpu2")
        run_train(cpu, ranks=2, micro_batch=4)
        run_train(gpu, ranks=2, micro_batch=4, device="cuda")
        self.assert_first_loss_matches_cpu(cpu, gpu)
        run_train(os.path.join(TMP, "gpu2z"), ranks=2, micro_batch=4, device="cuda", zero=1)

    def test_bf16_learns_near_fp32_and_keeps_fp32_master_weights(self):
        fp32, bf16 = os.path.join(TMP, "gpu_fp32"), os.path.join(TMP, "gpu_bf16")
        run_train(fp32, device="cuda")
        run_train(bf16, device="cuda", precision="bf16")
        l32, l16 = losses(fp32), losses(bf16)
        # First-order bound: each GEMM rounds its operands to bf16 (relative
        # 2^-8 each, two operands); the step-1 logits pass through at most
        # BF16_SEQUENTIAL_GEMMS products in sequence, so the loss moves by at
        # most that many times 2·2^-8 relative (no cancellation assumed).
        bound = BF16_SEQUENTIAL_GEMMS * 2 * 2.0 ** -8
        self.assertLessEqual(abs(l32[1] - l16[1]), bound * l32[1], f"{l32[1]} vs {l16[1]}")
        self.assertLess(l16[max(l16)], l16[1], "the bf16 run does not learn")
        # Master weights stay fp32: after 10 AdamW steps almost every weight
        # has non-zero low 16 bits, which a bf16 master copy could not hold.
        import h5py
        import numpy as np
        ckpts = sorted(os.listdir(os.path.join(bf16, "checkpoints")))
        path = os.path.join(bf16, "checkpoints", [c for c in ckpts if c.endswith(".h5")][-1])
        with h5py.File(path, "r") as f:
            w = np.concatenate([np.asarray(f["model"][k]).ravel() for k in f["model"]])
        low = (w.view(np.uint32) & 0xFFFF) != 0
        self.assertGreater(low.mean(), 0.5, "parameters look bf16-rounded")

    def test_a_run_too_large_for_the_gpu_fails_before_allocating(self):
        proc = run_train(os.path.join(TMP, "huge"), check=False, device="cuda", n_layer=48,
                         d_model=8192, n_head=64, kv_rank=1024, steps=1)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("GPU memory", proc.stderr)


if __name__ == "__main__":
    # Optional test class names after BUILD_DIR (ctest runs one class each).
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:])
