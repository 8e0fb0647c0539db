"""Tests of recipes/, the cluster launch scripts, tools/plot-metrics and the
paper table's report writer.

Run by ctest as `python3 recipes_test.py BUILD_DIR TestClass`. Expected values
are the paper's shapes (arXiv 2506.09342: 9 layers, d=512, 8 heads, context
512, vocab 4096) and hand-computed arithmetic, never the code's own output.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SRC = os.environ.get("MLA_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_BINARY_DIR"]
PY = os.environ.get("MLA_PYTHON", "/usr/bin/python3")
TRAIN = os.path.join(BUILD, "launch", "mla-train")
CALC = os.path.join(BUILD, "tools", "mla-calc", "mla-calc")
DATA_TOOL = os.path.join(BUILD, "tools", "mla-data", "mla-data")
CHECK = os.path.join(SRC, "recipes", "check-recipe")
MPI_FLAGS = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])

sys.path.insert(0, os.path.join(SRC, "tools", "paper-table"))
import report  # noqa: E402


def flagfile(path):
    flags = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--"):
                k, _, v = line[2:].partition("=")
                flags[k] = v
    return flags


def dry_run(script, **env):
    e = dict(os.environ, DRY_RUN="1", **env)
    e.pop("SLURM_JOB_NUM_NODES", None)
    r = subprocess.run(["bash", os.path.join(SRC, "recipes", "cluster", script)], env=e,
                       capture_output=True, text=True, check=True)
    return r.stdout


def check_dry_run(text):
    return subprocess.run([PY, CHECK, "--dry_run", "-"], input=text, capture_output=True, text=True)


# The paper's variants, as (attention, kv_rank as a fraction of d).
PAPER_VARIANTS = {("mha", None), ("mha_rope", None), ("mla", 1), ("mla", 2), ("mla", 4),
                  ("mla_rope", 2), ("mla_rope", 4), ("mla_rope", 8)}


class PaperRecipes(unittest.TestCase):
    def variants(self, scale):
        found = set()
        for name in os.listdir(os.path.join(SRC, "recipes", scale)):
            if not name.endswith(".flags") or name == "quickstart.flags":
                continue
            f = flagfile(os.path.join(SRC, "recipes", scale, name))
            d = int(f["d_model"])
            frac = d // int(f["kv_rank"]) if f["attention"].startswith("mla") else None
            if frac is not None:
                self.assertEqual(d % int(f["kv_rank"]), 0, name)
            found.add((f["attention"], frac))
        return found

    def test_paper_scale_has_every_variant_at_the_papers_shape(self):
        self.assertEqual(self.variants("paper"), PAPER_VARIANTS)
        for name in os.listdir(os.path.join(SRC, "recipes", "paper")):
            f = flagfile(os.path.join(SRC, "recipes", "paper", name))
            shape = (f["n_layer"], f["d_model"], f["n_head"], f["context_length"])
            self.assertEqual(shape, ("9", "512", "8", "512"), name)

    def test_paper_scale_is_about_30m_parameters_at_vocab_4096(self):
        # The paper reports ~30M; every variant must land within 25-35M.
        for name in sorted(os.listdir(os.path.join(SRC, "recipes", "paper"))):
            f = flagfile(os.path.join(SRC, "recipes", "paper", name))
            args = [CALC, "--vocab_size=4096"] + [
                f"--{k}={f[k]}" for k in ("attention", "n_layer", "d_model", "n_head",
                                          "context_length", "kv_rank", "rope_dim") if k in f]
            out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
            params = int(re.search(r"parameters\s+(\d+)", out).group(1))
            self.assertTrue(25e6 <= params <= 35e6, f"{name}: {params}")

    def test_cpu_scale_has_every_variant_and_a_quickstart(self):
        self.assertEqual(self.variants("cpu"), PAPER_VARIANTS)
        self.assertEqual(self.variants("cpu-v2"), PAPER_VARIANTS)
        self.assertTrue(os.path.isfile(os.path.join(SRC, "recipes", "cpu", "quickstart.flags")))

    def test_variants_of_a_scale_share_batch_schedule_and_seed(self):
        # The paper table compares variants at one token budget and seed.
        keys = ("global_batch_tokens", "context_length", "steps", "lr", "min_lr", "warmup_steps",
                "seed", "train_data", "val_data", "n_layer", "d_model", "n_head")
        for scale in ("paper", "cpu", "cpu-v2"):
            d = os.path.join(SRC, "recipes", scale)
            seen = {tuple(flagfile(os.path.join(d, n)).get(k) for k in keys)
                    for n in os.listdir(d) if n != "quickstart.flags"}
            self.assertEqual(len(seen), 1, f"{scale}: {seen}")


class ClusterDryRun(unittest.TestCase):
    def derived(self, script, **env):
        r = check_dry_run(dry_run(script, **env))
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_slurm_two_nodes_is_16_ranks_of_8_sequences(self):
        d = self.derived("slurm-a100.sbatch")
        # 65536 tokens / 512 = 128 sequences; 2 nodes x 8 GPUs = 16 ranks of 8.
        self.assertEqual((d["world"], d["global_sequences"], d["sequences_per_rank"],
                          d["accumulation_steps"]), (16, 128, 8, 1))
        self.assertEqual((d["device"], d["resume"]), ("cuda", "auto"))

    def test_slurm_four_nodes_keeps_the_global_batch(self):
        d = self.derived("slurm-a100.sbatch", NODES="4", MICRO_BATCH="4")
        self.assertEqual((d["world"], d["sequences_per_rank"], d["accumulation_steps"]), (32, 4, 1))

    def test_slurm_requeues_on_sigterm_with_checkpoints_on_shared_storage(self):
        text = open(os.path.join(SRC, "recipes", "cluster", "slurm-a100.sbatch")).read()
        self.assertIn("#SBATCH --signal=B:TERM@120", text)
        self.assertIn("#SBATCH --requeue", text)
        self.assertRegex(text, r"trap \w+ TERM")
        self.assertIn("scontrol requeue", text)
        d = self.derived("slurm-a100.sbatch", SHARED="/lustre/me")
        self.assertTrue(d["out_dir"].startswith("/lustre/me/"), d["out_dir"])

    def test_slurm_mpirun_launcher_starts_the_same_world(self):
        d = self.derived("slurm-a100.sbatch", LAUNCHER="mpirun")
        self.assertEqual(d["world"], 16)

    def test_single_node_is_8_ranks_of_16_sequences(self):
        d = self.derived("node-8gpu.sh")
        self.assertEqual((d["world"], d["sequences_per_rank"], d["accumulation_steps"]), (8, 16, 1))

    def test_cpu_cluster_world_is_the_hostfile_slots(self):
        # hostfile.example: 4 hosts x slots=2.
        d = self.derived("cpu-cluster.sh")
        self.assertEqual((d["world"], d["sequences_per_rank"], d["accumulation_steps"],
                          d["device"]), (8, 16, 4, "cpu"))

    def test_checker_rejects_a_world_that_does_not_split_the_batch(self):
        r = check_dry_run(dry_run("slurm-a100.sbatch", NODES="3"))  # 24 ranks, 128 sequences
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not split over 24 ranks", r.stderr)

    def test_checker_rejects_a_micro_batch_that_does_not_divide_the_rank_share(self):
        r = check_dry_run(dry_run("slurm-a100.sbatch", MICRO_BATCH="16"))  # 8 per rank
        self.assertEqual(r.returncode, 1)
        self.assertIn("micro_batch=16 must divide the 8 sequences", r.stderr)

    def test_checker_rejects_an_unknown_flag(self):
        r = subprocess.run([PY, CHECK, "--world=1", "recipes/cpu/mha.flags", "--kv_rnak=3"],
                           capture_output=True, text=True, cwd=SRC)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--kv_rnak: unknown mla-train flag", r.stderr)

    def test_gpu_scripts_parse_in_mla_train_and_stop_at_the_cuda_backend(self):
        # Real flag parsing: the scripts' own mla-train arguments, one process.
        # Model validation runs before the device is created, so stopping at
        # the device (no usable GPU or no CUDA in the build: "--device=cuda: …")
        # or, with a GPU, at the training data (not created by the dry run)
        # means every flag parsed and the model config is valid.
        import shlex
        for script in ("slurm-a100.sbatch", "node-8gpu.sh"):
            cmd = shlex.split(dry_run(script).split("command: ", 1)[1])
            idx = next(i for i, t in enumerate(cmd) if t.endswith("mla-train"))
            r = subprocess.run([TRAIN] + cmd[idx + 1:], capture_output=True, text=True, cwd=SRC,
                               timeout=60)
            self.assertEqual(r.returncode, 1, script)
            self.assertRegex(r.stderr, r"--device=cuda: |\.bin: cannot open", script)


class CpuRecipesRun(unittest.TestCase):
    """Each CPU recipe really runs one step under mpirun -np 2 on tiny data."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mla-recipes-test-")
        cls.data = os.path.join(cls.tmp, "data")
        subprocess.run([DATA_TOOL, "all", "--count", "2000", "--vocab_size", "512", "--out",
                        cls.data], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_cpu_recipe_trains_one_step_on_two_ranks(self):
        names = sorted(n for n in os.listdir(os.path.join(SRC, "recipes", "cpu")) if n.endswith(".flags"))
        self.assertGreaterEqual(len(names), 9)
        checks, procs = {}, {}
        for name in names:
            out = os.path.join(self.tmp, name)
            # Only the data, the length and the cost of validation are overridden.
            overrides = [f"--train_data={self.data}/train.bin", f"--val_data={self.data}/val.bin",
                         f"--tokenizer={self.data}/tokenizer.model", "--steps=1",
                         "--eval_batches=1", "--peak_gflops=1", "--threads=1", f"--out_dir={out}"]
            checks[name] = subprocess.run([PY, CHECK, "--world=2", f"recipes/cpu/{name}"] + overrides,
                                          capture_output=True, text=True, cwd=SRC)
            # Three jobs at a time: a one-step run mostly waits on start-up and the
            # final checkpoint's fsync, not on the CPU.
            if len(procs) >= 3:
                self.finish(*procs.popitem())
            procs[name] = (out, subprocess.Popen(
                ["mpirun"] + MPI_FLAGS + ["-np", "2", TRAIN, f"--flagfile=recipes/cpu/{name}"]
                + overrides, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=SRC))
        while procs:
            self.finish(*procs.popitem())
        for name in names:
            with self.subTest(recipe=name):
                chk = checks[name]
                self.assertEqual(chk.returncode, 0, chk.stderr)
                cfg = json.load(open(os.path.join(self.tmp, name, "config.json")))
                # The checker's arithmetic is the trainer's.
                self.assertEqual(cfg["world_size"], 2)
                self.assertEqual(cfg["accumulation_steps"], json.loads(chk.stdout)["accumulation_steps"])

    def finish(self, name, job):
        out, proc = job
        text, _ = proc.communicate(timeout=180)
        self.assertEqual(proc.returncode, 0, f"{name}: {text[-2000:]}")

    def test_checker_and_trainer_reject_the_same_split(self):
        # 3 sequences per step cannot split over 2 ranks: both must say so.
        bad = [f"--train_data={self.data}/train.bin", "--val_data=", "--context_length=128",
               "--global_batch_tokens=384", "--steps=1", "--peak_gflops=1", "--threads=1",
               f"--out_dir={self.tmp}/bad"]
        chk = subprocess.run([PY, CHECK, "--world=2", "recipes/cpu/mha.flags"] + bad,
                             capture_output=True, text=True, cwd=SRC)
        r = subprocess.run(["mpirun"] + MPI_FLAGS + ["-np", "2", TRAIN, "--flagfile=recipes/cpu/mha.flags"]
                           + bad, capture_output=True, text=True, cwd=SRC, timeout=120)
        self.assertEqual(chk.returncode, 1)
        self.assertNotEqual(r.returncode, 0)
        msg = "global batch of 3 sequences does not split over 2 ranks"
        self.assertIn(msg, chk.stderr)
        self.assertIn(msg, r.stderr)


class SlurmPreemption(unittest.TestCase):
    """The sbatch script's SIGTERM path without Slurm: LAUNCHER=mpirun on this
    machine, a stand-in `scontrol` that records its arguments."""

    def test_sigterm_checkpoints_requeues_and_the_restart_resumes(self):
        import signal
        import time
        tmp = tempfile.mkdtemp(prefix="mla-sbatch-test-")
        proc = None
        try:
            data = os.path.join(tmp, "data")
            subprocess.run([DATA_TOOL, "all", "--count", "2000", "--vocab_size", "512", "--out", data],
                           check=True, capture_output=True)
            bindir = os.path.join(tmp, "bin")
            os.makedirs(bindir)
            with open(os.path.join(bindir, "scontrol"), "w") as f:
                f.write(f"#!/bin/sh\necho \"$*\" >> {tmp}/scontrol.log\n")
            os.chmod(os.path.join(bindir, "scontrol"), 0o755)
            run_dir = os.path.join(tmp, "run")
            env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], SLURM_SUBMIT_DIR=SRC,
                       SLURM_JOB_ID="4242", LAUNCHER="mpirun", DEVICE="cpu", NODES="1",
                       GPUS_PER_NODE="2", MICRO_BATCH="8", SLURM_CPUS_PER_TASK="1",
                       RECIPE="recipes/cpu/mha.flags", DATA_DIR=data, RUN_DIR=run_dir,
                       BIN=TRAIN, MPIRUN_EXTRA=" ".join(MPI_FLAGS))
            env.pop("SLURM_JOB_NUM_NODES", None)
            script = os.path.join(SRC, "recipes", "cluster", "slurm-a100.sbatch")
            extra = ["--peak_gflops=1", "--eval_batches=1", "--log_interval=1", "--ckpt_every=0"]
            # Own session: a failing run (ranks that never stop) is killed as a group below.
            proc = subprocess.Popen(["bash", script, "--steps=100000"] + extra, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            metrics = os.path.join(run_dir, "metrics.jsonl")
            deadline = time.time() + 120
            while time.time() < deadline:
                if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3:
                    break
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)  # what --signal=B:TERM@120 delivers
            out, _ = proc.communicate(timeout=180)
            self.assertEqual(proc.returncode, 0, out[-3000:])
            self.assertEqual(open(os.path.join(tmp, "scontrol.log")).read().split(), ["requeue", "4242"])
            recs = [json.loads(l) for l in open(metrics)]
            last = max(r["step"] for r in recs if "loss" in r)
            self.assertIn({"step": last, "checkpoint": os.path.join(run_dir, "checkpoints",
                                                                    f"ckpt-{last}.h5")},
                          [{k: r[k] for k in ("step", "checkpoint")} for r in recs if "checkpoint" in r])
            # The requeued job runs the same script; --resume=auto continues.
            r = subprocess.run(["bash", script, f"--steps={last + 2}"] + extra, env=env,
                               capture_output=True, text=True, timeout=180)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn(f"resumed from {run_dir}/checkpoints/ckpt-{last}.h5 at step {last}",
                          r.stdout + r.stderr)
        finally:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


def synthetic_metrics(path, steps=50, base=4.0):
    with open(path, "w") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"step": s, "loss": base - 0.02 * s, "lr": 1e-3 * min(1, s / 10),
                                "grad_norm": 1.0, "tokens_per_s": 4000 + s, "mfu": 0.2,
                                "comm_share": 0.05, "tokens_seen": 4096 * s, "skipped_steps": 0,
                                "elapsed_s": s}) + "\n")
            if s % 25 == 0:
                f.write(json.dumps({"step": s, "val_loss": base - 0.019 * s, "val_ppl": 1}) + "\n")
        f.write(json.dumps({"step": steps, "checkpoint": "x.h5", "save_s": 0.1}) + "\n")


def assert_png(test, path):
    test.assertTrue(os.path.isfile(path), path)
    with open(path, "rb") as f:
        head = f.read(8)
    test.assertEqual(head, b"\x89PNG\r\n\x1a\n", path)
    test.assertGreater(os.path.getsize(path), 2000, path)  # more than an empty canvas header


class PlotMetrics(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mla-plot-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_writes_loss_lr_and_throughput_pngs_for_a_run(self):
        run = os.path.join(self.tmp, "run")
        os.makedirs(run)
        synthetic_metrics(os.path.join(run, "metrics.jsonl"))
        r = subprocess.run([PY, os.path.join(SRC, "tools", "plot-metrics"), run],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("loss.png", "lr.png", "tokens_per_s.png"):
            assert_png(self, os.path.join(run, "plots", name))

    def test_a_directory_without_metrics_is_one_error(self):
        r = subprocess.run([PY, os.path.join(SRC, "tools", "plot-metrics"), self.tmp],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("metrics.jsonl: no such file", r.stderr)


class PaperTableReport(unittest.TestCase):
    # (variant, attention, kv_rank, rope_dim, val_loss, kv bytes/token, decode tok/s)
    # d=128, 4 layers, fp32: MHA 2*128*4*4 = 4096 B; mla r=128: 128*4*4 = 2048 B;
    # mla_rope r=64, d_R=16: (64+16)*4*4 = 1280 B.
    RUNS = [("mha", "mha", 128, 16, 2.0000, 4096, 900.0),
            ("mha_rope", "mha_rope", 128, 16, 1.9600, 4096, 880.0),
            ("mla_r128", "mla", 128, 16, 2.1000, 2048, 1000.0),
            ("mla_rope_r64", "mla_rope", 64, 16, 2.0060, 1280, 1400.0)]
    # Hand-computed: Δ = 100·(v − 2.0)/2.0; reduction = 100·(1 − kv/4096); speed-up = tps/1000.
    EXPECTED = {"mha": ("+0.00%", "0.0%", "0.90×"),
                "mha_rope": ("-2.00%", "0.0%", "0.88×"),
                "mla_r128": ("+5.00%", "50.0%", "1.00×"),
                "mla_rope_r64": ("+0.30%", "68.8%", "1.40×")}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mla-table-test-")
        for v, att, r, p, loss, kv, tps in self.RUNS:
            d = os.path.join(self.tmp, "runs", v)
            os.makedirs(d)
            json.dump({"model.attention": att, "model.d_model": "128", "model.kv_rank": str(r),
                       "model.rope_dim": str(p)}, open(os.path.join(d, "config.json"), "w"))
            synthetic_metrics(os.path.join(d, "metrics.jsonl"), base=loss + 1)
            json.dump({"task": "loss", "loss": loss}, open(os.path.join(d, "eval_loss.json"), "w"))
            json.dump({"parameters": 1000000, "kv_cache": {"bytes_per_token_fp32": kv,
                                                           "mha_bytes_per_token_fp32": 4096},
                       "speed": [{"decode": "absorbed", "batch": 1, "context": 128,
                                  "prefill_tokens_per_s": 1, "decode_tokens_per_s": tps},
                                 {"decode": "absorbed", "batch": 1, "context": 64,
                                  "prefill_tokens_per_s": 1, "decode_tokens_per_s": 1.0},
                                 {"decode": "naive", "batch": 1, "context": 128,
                                  "prefill_tokens_per_s": 1, "decode_tokens_per_s": 2.0}]},
                      open(os.path.join(d, "eval_report.json"), "w"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self):
        rows = [report.collect_row(v, os.path.join(self.tmp, "runs", v)) for v, *_ in self.RUNS]
        out = os.path.join(self.tmp, "report")
        report.write_report(out, rows, command="paper-table --test")
        return out

    def test_table_has_hand_computed_delta_reduction_and_speedup(self):
        out = self.write()
        md = open(os.path.join(out, "report.md")).read()
        cells = {}
        for line in md.splitlines():
            parts = [c.strip() for c in line.strip("|").split("|")]
            if len(parts) == len(report.TABLE_COLUMNS) and parts[0] in self.EXPECTED:
                col = {name: parts[i] for i, name in enumerate(report.TABLE_COLUMNS)}
                cells[parts[0]] = (col["Δ vs MHA"], col["KV reduction"], col["speed-up vs MLA r=d"])
        self.assertEqual(cells, self.EXPECTED)

    def test_pareto_front_is_the_undominated_variants(self):
        rows = [report.collect_row(v, os.path.join(self.tmp, "runs", v)) for v, *_ in self.RUNS]
        # mha (4096 B, 2.0) is dominated by mha_rope (4096 B, 1.96); mla_r128
        # (2048 B, 2.1) by mla_rope_r64 (1280 B, 2.006).
        self.assertEqual([r["variant"] for r in report.pareto_front(rows)],
                         ["mla_rope_r64", "mha_rope"])

    def test_writes_loss_curves_and_pareto_pngs(self):
        out = self.write()
        assert_png(self, os.path.join(out, "loss_curves.png"))
        assert_png(self, os.path.join(out, "pareto.png"))

    def test_plateau_is_the_change_over_the_last_tenth(self):
        # Validations every 10 of 100 steps.
        val = [{"step": s, "val_loss": 3.0 - 0.01 * s} for s in range(10, 101, 10)]
        p = report.plateau(val, 100)  # the rule: the window starts at step 90
        self.assertEqual(p["start_step"], 90)
        # (2.1 - 2.0) / 2.0 = 5 %: not a plateau.
        self.assertAlmostEqual(p["change_pct"], 5.0)
        self.assertFalse(p["plateaued"])
        p = report.plateau(val, 100, window=0.2)  # from step 80: (2.2 - 2.0) / 2.0
        self.assertEqual(p["start_step"], 80)
        self.assertAlmostEqual(p["change_pct"], 10.0)
        flat = [{"step": s, "val_loss": 2.0 + (0.015 if s == 90 else 0.0)} for s in range(10, 101, 10)]
        p = report.plateau(flat, 100)
        self.assertAlmostEqual(p["change_pct"], 0.75)  # 0.015 / 2.0
        self.assertTrue(p["plateaued"])
        self.assertIsNone(report.plateau(val[:1], 100))

    def test_seeds_are_averaged_and_claims_name_their_rows(self):
        base = [report.collect_row(v, os.path.join(self.tmp, "runs", v)) for v, *_ in self.RUNS]
        rows = []
        for r in base:
            rows.append(dict(r, seed=1))
            if r["variant"] in ("mha", "mla_rope_r64"):
                # A second seed 0.04 higher: the mean rises by 0.02, the range is 0.04.
                rows.append(dict(r, seed=2, val_loss=r["val_loss"] + 0.04, decode_tps=r["decode_tps"] * 3))
        out = os.path.join(self.tmp, "seeds")
        combined = {r["variant"]: r for r in report.write_report(out, rows)}
        self.assertAlmostEqual(combined["mha"]["val_loss"], 2.02)
        self.assertEqual(combined["mha"]["seeds"], [1, 2])
        self.assertAlmostEqual(combined["mha"]["val_loss_max"] - combined["mha"]["val_loss_min"], 0.04)
        self.assertAlmostEqual(combined["mha"]["decode_tps"], 1800.0)  # median of 900 and 2700
        self.assertEqual(combined["mla_r128"]["seeds"], [1])
        table = json.load(open(os.path.join(out, "table.json")))
        by_claim = {c["claim"]: c for c in table["claims"]}
        names = {r["variant"] for r in table["rows"]}
        for c in table["claims"]:
            self.assertTrue(set(c["rows"]) <= names, c)
        first = by_claim["MLA+RoPE r=d/2 matches MHA's validation loss"]
        # (2.026 - 2.02) / 2.02 = +0.297 %, inside half the summed ranges (0.04): agrees.
        self.assertIn("+0.30%", first["here"])
        self.assertTrue(first["verdict"].startswith("agrees"), first)
        # mla r=d at 2.1 vs 2.02: +3.96 %, inside the paper's 3-5 %.
        self.assertIn("mla_r128 +3.96%", by_claim["MLA without RoPE is 3–5% worse than MHA"]["here"])
        self.assertEqual(by_claim["MLA without RoPE is 3–5% worse than MHA"]["verdict"], "agrees")
        # 1280 of 4096 bytes: 68.8 % less.
        self.assertIn("68.8%", by_claim["MLA+RoPE r=d/2 cuts the KV cache by 45%"]["here"])
        # decode: median(1400, 4200) = 2800 vs 1000 tok/s.
        self.assertIn("2.80×", by_claim["r=d/2 decodes 1.4× faster than full-rank MLA"]["here"])


class PaperTableResume(unittest.TestCase):
    """paper-table killed in the middle of a run continues where it stopped."""

    RECIPE = ["--n_layer=1", "--d_model=32", "--n_head=2", "--context_length=32",
              "--global_batch_tokens=512", "--micro_batch=8", "--steps={steps}", "--warmup_steps=5",
              "--lr=2e-3", "--min_lr=2e-4", "--eval_interval=25", "--eval_batches=1",
              "--log_interval=25", "--ckpt_every=25", "--peak_gflops=1", "--seed=1",
              "--train_data={data}/train.bin", "--val_data={data}/val.bin",
              "--tokenizer={data}/tokenizer.model"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mla-table-resume-")
        data = os.path.join(self.tmp, "data")
        subprocess.run([DATA_TOOL, "all", "--count", "1000", "--vocab_size", "512", "--out", data],
                       check=True, capture_output=True)
        self.recipes = os.path.join(self.tmp, "recipes")
        os.makedirs(self.recipes)
        self.steps = 150
        for name, extra in (("mha", ["--attention=mha"]),
                            ("mla_rope_r16", ["--attention=mla_rope", "--kv_rank=16", "--rope_dim=8"])):
            with open(os.path.join(self.recipes, name + ".flags"), "w") as f:
                f.write("\n".join(extra + [x.format(steps=self.steps, data=data) for x in self.RECIPE]) + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def command(self):
        return [PY, os.path.join(SRC, "tools", "paper-table", "paper-table"), f"--recipes_dir={self.recipes}",
                "--seeds=1,2", "--seeded_variants=mha", "--ranks=2", "--threads=1", f"--build={BUILD}",
                f"--runs={self.tmp}/runs", f"--out={self.tmp}/report", "--bench_repeats=1",
                "--max_new_tokens=4"]

    def test_killed_table_resumes_from_finished_runs_and_checkpoints(self):
        # Kill the whole process group once the second run (mha seed 2) has a
        # checkpoint but has not finished.
        second = os.path.join(self.tmp, "runs", "mha-seed2")
        proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            ckpts = glob.glob(os.path.join(second, "checkpoints", "*.h5"))
            if ckpts:
                break
            time.sleep(0.05)
        self.assertIsNone(proc.poll(), "the table finished before it could be killed")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        steps_before = [json.loads(l)["step"] for l in open(os.path.join(second, "metrics.jsonl"))]
        self.assertLess(max(steps_before), self.steps)

        r = subprocess.run(self.command(), capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("mha seed 1: finished earlier", r.stdout)
        resumed = re.findall(r"mla-train: resumed from \S+ at step (\d+)",
                             open(os.path.join(second, "paper-table.log")).read())
        self.assertEqual(len(resumed), 1)
        self.assertGreater(int(resumed[0]), 0)
        self.assertLess(int(resumed[0]), self.steps)
        # The first seed was neither retrained nor resumed.
        self.assertNotIn("resumed from", open(os.path.join(self.tmp, "runs", "mha", "paper-table.log")).read())
        table = json.load(open(os.path.join(self.tmp, "report", "table.json")))
        seeds = {row["variant"]: row["seeds"] for row in table["rows"]}
        self.assertEqual(seeds, {"mha": [1, 2], "mla_rope_r16": [1]})
        for row in table["rows"]:
            for run in row["runs"]:
                self.assertEqual(run["steps"], self.steps)
        clock = json.load(open(os.path.join(self.tmp, "runs", "paper-table-time.json")))
        self.assertEqual(clock["invocations"], 2)


if __name__ == "__main__":
    names = sys.argv[2:]
    sys.argv = sys.argv[:1]
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for n in names or ["PaperRecipes", "ClusterDryRun", "CpuRecipesRun", "SlurmPreemption",
                       "PlotMetrics", "PaperTableReport", "PaperTableResume"]:
        suite.addTests(loader.loadTestsFromName(n, sys.modules[__name__]))
    sys.exit(0 if unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful() else 1)
