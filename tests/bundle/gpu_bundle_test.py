"""The GPU bundle (scripts/gpu-bundle.sh) and the device check's dry run
(scripts/gpu-check.sh --dry-run), on the CPU machine.

Run by ctest as `python3 gpu_bundle_test.py SOURCE_DIR BUILD_DIR`. A bundle is
made from this build (small data set) and copied to a folder outside the
checkout; everything then runs under `env -i` with only what the bundle's
env.sh sets:
  - every program answers --help, and a tiny --device=cpu training run, a
    checkpoint verification and a greedy generation work;
  - every shared library the training run loads (plugins included, seen
    through the loader's LD_DEBUG=libs) comes from the bundle, except the
    ones a CUDA machine provides (glibc, libstdc++, libgcc_s, CUDA's);
  - the bundle fits the device tool's carry budget;
  - the dry run writes the summary with the schema the GPU run writes, and
    no step fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.path.abspath(sys.argv[1])
BUILD = os.path.abspath(sys.argv[2])
TMP = tempfile.mkdtemp(prefix="mla-bundle-test-")
BUNDLE = os.path.join(TMP, "copy", "gpu-bundle")
MAX_MIB = 56
CARRIED_MIB = None
# What a bare CUDA machine provides itself: the bundle leaves these out.
MACHINE_LIBS = re.compile(r"^(ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|"
                          r"libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|"
                          r"libnvidia)[.-]")


def setUpModule():
    made = os.path.join(TMP, "made")
    subprocess.run([os.path.join(SOURCE, "scripts", "gpu-bundle.sh"), "--from-build", BUILD,
                    "--out", made, "--stories", "1500", "--vocab", "512"],
                   check=True, capture_output=True, text=True)
    shutil.copytree(made, BUNDLE, symlinks=True)
    shutil.rmtree(made)
    # What the device tool carries: the bundle as written (env.sh unpacks
    # payload.tar.xz on first use).
    global CARRIED_MIB
    CARRIED_MIB = int(subprocess.run(["du", "-sm", BUNDLE], capture_output=True, text=True,
                                     check=True).stdout.split()[0])


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def bundle_shell(script, **kw):
    """Runs script under env -i with only the bundle's environment."""
    return subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", f"HOME={TMP}", "bash", "-c",
                           f". {BUNDLE}/env.sh && {script}"], capture_output=True, text=True,
                          cwd=TMP, **kw)


class BundleTest(unittest.TestCase):
    def test_is_outside_the_checkout_and_fits_the_carry_budget(self):
        self.assertFalse(os.path.commonpath([BUNDLE, SOURCE]) == SOURCE)
        self.assertLessEqual(CARRIED_MIB, MAX_MIB)

    def test_every_program_answers_help(self):
        for program in sorted(os.listdir(os.path.join(BUNDLE, "bin"))):
            r = bundle_shell(f"{program} --help")
            self.assertIn(r.returncode, (0, 1), f"{program}: {r.stderr[-400:]}")
            self.assertNotIn("error while loading shared libraries", r.stderr, program)
            self.assertTrue(r.stdout or r.stderr, program)

    def test_trains_verifies_and_generates_on_the_cpu(self):
        run = os.path.join(TMP, "run")
        data = os.path.join(BUNDLE, "data")
        train = (f"LD_DEBUG=libs LD_DEBUG_OUTPUT={TMP}/ld mla-train --device=cpu "
                 f"--train_data={data}/train.bin --val_data={data}/val.bin "
                 f"--tokenizer={data}/tokenizer.model --n_layer=1 --d_model=32 --n_head=4 "
                 f"--context_length=32 --kv_rank=16 --rope_dim=4 --global_batch_tokens=128 "
                 f"--micro_batch=4 --steps=3 --peak_gflops=1 --threads=1 --out_dir={run}")
        r = bundle_shell(train, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-600:] + r.stderr[-600:])
        ckpt = os.path.join(run, "checkpoints", "ckpt-3.h5")
        r = bundle_shell(f"mla-ckpt verify {ckpt}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = bundle_shell(f"mla-eval --task=generate --device=cpu --checkpoint={ckpt} "
                         f"--prompts={BUNDLE}/recipes/stories.jsonl --max_new_tokens=8 "
                         f"--threads=1 --out={TMP}/gen.jsonl", timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(f"{TMP}/gen.jsonl") as f:
            self.assertGreater(len(f.readlines()), 0)
        # Where every library the training run loaded came from.
        loaded = set()
        for name in os.listdir(TMP):
            if name.startswith("ld."):
                with open(os.path.join(TMP, name)) as f:
                    loaded |= set(re.findall(r"calling init: (\S+)", f.read()))
        self.assertTrue(any("/ompi/" in p for p in loaded), "no Open MPI plugin was loaded")
        outside = sorted(p for p in loaded if not p.startswith(BUNDLE + "/")
                         and not MACHINE_LIBS.match(os.path.basename(p)))
        self.assertEqual(outside, [], f"libraries loaded from outside the bundle: {outside}")

    def test_dry_run_writes_the_summary_without_failures(self):
        out = os.path.join(TMP, "check")
        r = bundle_shell(f"{BUNDLE}/gpu-check.sh --dry-run --out {out} --work {TMP}/work",
                         timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        with open(os.path.join(out, "gpu-check.json")) as f:
            summary = json.load(f)
        self.assertTrue(os.path.getsize(os.path.join(out, "gpu-check.log")) > 0)
        self.assertEqual(sorted(os.listdir(out)), ["gpu-check.json", "gpu-check.log"])
        self.assertEqual(summary["schema_version"], 1)
        self.assertEqual(summary["mode"], "dry-run")
        by_name = {s["name"]: s for s in summary["steps"]}
        for step in summary["steps"]:
            self.assertEqual(set(step), {"name", "status", "reason", "seconds", "budget_s", "data"})
            self.assertIn(step["status"], ("ok", "skipped"), step)
            if step["status"] == "skipped":
                self.assertTrue(step["reason"], step["name"])
        for name in ("device", "gemm_peak", "train:quickstart:fp32", "train:paper:fp32",
                     "train:paper:bf16", "train:quickstart:bf16", "cpu_reference", "loss_vs_cpu",
                     "resume:gpu_to_cpu", "resume:cpu_to_gpu", "eval_greedy", "decode_speed",
                     "peer:eager", "peer:compiled"):
            self.assertIn(name, by_name)
        for name in ("train:quickstart:fp32", "train:paper:fp32", "cpu_reference", "loss_vs_cpu",
                     "resume:gpu_to_cpu", "resume:cpu_to_gpu", "eval_greedy", "decode_speed",
                     "peer:eager"):
            self.assertEqual(by_name[name]["status"], "ok", by_name[name])
        self.assertGreater(by_name["train:quickstart:fp32"]["data"]["tokens_per_s"], 0)
        self.assertGreater(by_name["peer:eager"]["data"]["tokens_per_s"], 0)
        self.assertIn("mla_rope_over_mha", by_name["decode_speed"]["data"])
        self.assertEqual(summary["counts"]["failed"], 0)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
