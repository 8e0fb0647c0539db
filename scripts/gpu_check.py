#!/usr/bin/env python3
"""The device check: everything mlatrain's CUDA backend must show on a GPU, in
one run of at most 8 minutes, from the bundle (scripts/gpu-bundle.sh).

    gpu-check.sh --out DIR [--dry-run] [--only STEP,STEP...] [--deadline S]

Writes DIR/gpu-check.json (the summary) and DIR/gpu-check.log (every
command and its output), nothing else there; the runs go to --work. Each step has its own time budget and records
status ok / failed / skipped, the reason, its seconds and its figures; a
step whose budget no longer fits before the deadline is skipped, so the run
ends in time. --dry-run runs the same steps on the CPU with tiny shapes and
the same JSON schema (a CI test), so the script cannot rot.

Steps (docs/cuda.md, "Reading the summary"):
  device           nvidia-smi: name, driver, memory, compute capability
  gemm_peak        mla-gemm-peak: fp32 and bf16 cuBLASLt GEMM TFLOP/s
  test:<binary>    each GPU test binary on its own (an abort hides nothing)
  cpu_reference    the quickstart fp32 run on the CPU (in the background)
  train:<shape>:<precision>  mla-train on the GPU: tokens/s, MFU against the
                   same-run GEMM peak, peak GPU memory against the plan
  loss_vs_cpu      the GPU fp32 quickstart loss curve against the CPU's
  resume:gpu_to_cpu, resume:cpu_to_gpu  a checkpoint continued on the other
                   device: the first resumed loss against the same device's
  eval_greedy      mla-eval greedy generations, GPU equal to CPU
  decode_speed     mla-eval decode tok/s, batch 1 and 32, MHA vs MLA+RoPE
  peer:eager, peer:compiled  the same shape in PyTorch (bf16 autocast,
                   SDPA), eager and under torch.compile, tokens/s beside mla-train's
"""
import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SCHEMA_VERSION = 1
U = 2.0 ** -24  # fp32 unit roundoff

# Model shapes: flagfile, overrides, steps on the GPU; the dry run shrinks them.
SHAPES = {
    "quickstart": ("quickstart.flags", {}, 300),
    # Paper shape (9 layers, d=512, 8 heads, T=512, MLA+RoPE r=256) at 16×512
    # tokens per step.
    "paper": ("mla_rope_r256.flags", {"global_batch_tokens": 8192}, 200),
}
DRY_MODEL = {"n_layer": 2, "d_model": 32, "n_head": 4, "context_length": 32, "kv_rank": 16,
             "rope_dim": 4, "micro_batch": 4, "global_batch_tokens": 128}
DRY_STEPS = 6


class Skip(Exception):
    """The step cannot run here; the message says why."""


class Fail(Exception):
    """The step ran and its result is wrong; the message says how."""


class Check:
    def __init__(self, args):
        self.bundle = os.path.dirname(os.path.abspath(__file__))
        self.out = os.path.abspath(args.out)
        self.dry = args.dry_run
        self.only = set(filter(None, (args.only or "").split(",")))
        self.start = time.monotonic()
        self.deadline = args.deadline or (110 if self.dry else 450)
        self.device = "cpu" if self.dry else "cuda"
        # Runs, checkpoints and generations stay out of --out: the device tool
        # brings back at most 8 files from there.
        self.work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(
            prefix="mla-gpu-check-")
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)
        self.log = open(os.path.join(self.out, "gpu-check.log"), "w")
        self.steps = []
        self.peak = {}  # TFLOP/s by precision, from gemm_peak
        self.runs = {}  # run name -> run dir and parsed metrics
        self.cpu_ref = None  # the background CPU reference process
        self.python = sys.executable
        # The bundle's programs run with the bundle's libraries (env.sh, via
        # gpu-check.sh); Python, torch and nvidia-smi with the machine's.
        self.bundle_env = dict(os.environ)
        if "MLA_BUNDLE_LD_LIBRARY_PATH" in os.environ:
            self.bundle_env["LD_LIBRARY_PATH"] = os.environ["MLA_BUNDLE_LD_LIBRARY_PATH"]

    # ---- plumbing
    def elapsed(self):
        return time.monotonic() - self.start

    def say(self, text):
        self.log.write(text + "\n")
        self.log.flush()

    def selected(self, name):
        return not self.only or any(name == o or name.startswith(o + ":") for o in self.only)

    def step(self, name, budget_s, fn):
        if not self.selected(name):
            return None
        record = {"name": name, "status": "skipped", "reason": "", "seconds": 0.0,
                  "budget_s": budget_s, "data": {}}
        left = self.deadline - self.elapsed()
        if budget_s > left:
            record["reason"] = f"global deadline: {left:.0f} s left, budget {budget_s} s"
        else:
            self.say(f"\n===== {name} (budget {budget_s} s, {self.elapsed():.0f} s elapsed)")
            t0 = time.monotonic()
            try:
                record["data"] = fn(budget_s) or {}
                record["status"] = "ok"
            except Skip as e:
                record["reason"] = str(e)
            except Fail as e:
                record["status"], record["reason"] = "failed", str(e)
            except Exception as e:  # a bug or an unexpected output: still recorded
                record["status"], record["reason"] = "failed", f"{type(e).__name__}: {e}"
            record["seconds"] = round(time.monotonic() - t0, 2)
        self.say(f"----- {name}: {record['status']} {record['reason']}")
        self.steps.append(record)
        return record

    def run(self, cmd, timeout, env=None, cwd=None):
        """Runs cmd (a list); returns (returncode, output). A timeout is a Fail."""
        self.say("$ " + " ".join(cmd))
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, env=env or self.bundle_env, cwd=cwd,
                               errors="replace")
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
            self.say(out)
            raise Fail(f"timed out after {timeout} s: {' '.join(cmd[:2])}")
        self.say(p.stdout)
        return p.returncode, p.stdout

    def run_ok(self, cmd, timeout, **kw):
        rc, out = self.run(cmd, timeout, **kw)
        if rc != 0:
            tail = " | ".join(out.strip().splitlines()[-3:])
            raise Fail(f"{os.path.basename(cmd[0])} exited {rc}: {tail}")
        return out

    def bin(self, name):
        return os.path.join(self.bundle, "bin", name)

    def data(self, name):
        return os.path.join(self.bundle, "data", name)

    # ---- steps
    def device_info(self, budget):
        if self.dry:
            raise Skip("dry run: no GPU")
        if shutil.which("nvidia-smi") is None:
            raise Fail("nvidia-smi not found")
        out = self.run_ok(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                           "--format=csv,noheader"], budget, env=dict(os.environ))
        name, driver, memory, cc = [x.strip() for x in out.strip().splitlines()[0].split(",")]
        self.run(["nvidia-smi"], budget, env=dict(os.environ))
        return {"name": name, "driver": driver, "memory": memory, "compute_capability": cc}

    def gemm_peak(self, budget):
        if not os.path.exists(self.bin("mla-gemm-peak")):
            raise Skip("mla-gemm-peak not in the bundle (built without CUDA)")
        n = 256 if self.dry else 8192
        out = self.run_ok([self.bin("mla-gemm-peak"), f"--device={self.device}", f"--n={n}"], budget)
        result = json.loads(out.strip().splitlines()[-1])
        for p in ("fp32", "bf16"):
            if result.get(f"{p}_tflops"):
                self.peak[p] = result[f"{p}_tflops"]
        return result

    def gpu_test(self, binary, budget):
        rc, out = self.run([binary, "--gtest_color=no"], budget)
        measured = [line[len("[measured] "):] for line in out.splitlines()
                    if line.startswith("[measured] ")]
        passed = re.search(r"\[  PASSED  \] (\d+) test", out)
        skipped = re.search(r"\[  SKIPPED \] (\d+) test", out)
        failed = re.findall(r"^\[  FAILED  \] (\S+)", out, re.M)
        data = {"passed": int(passed.group(1)) if passed else 0,
                "skipped": int(skipped.group(1)) if skipped else 0,
                "failed": sorted(set(failed)), "measured": measured}
        if rc != 0:
            if not failed:
                tail = " | ".join(out.strip().splitlines()[-3:])
                raise Fail(f"exited {rc} (aborted?): {tail}")
            raise Fail(f"{len(data['failed'])} failed: {', '.join(data['failed'][:6])}")
        if data["skipped"] and not data["passed"]:
            why = re.search(r"^(?:.*Skipped\s*)?(no CUDA device[^\n]*)", out, re.M)
            raise Skip(why.group(1) if why else "every test skipped")
        return data

    def train_flags(self, shape, precision, out_dir, device, steps=None, extra=None):
        flagfile, overrides, gpu_steps = SHAPES[shape]
        flags = {"train_data": self.data("train.bin"), "val_data": self.data("val.bin"),
                 "tokenizer": self.data("tokenizer.model"), "out_dir": out_dir,
                 "device": device, "precision": precision, "steps": steps or gpu_steps,
                 "log_interval": 1, "eval_interval": 0, "eval_batches": 2, "ckpt_every": 0,
                 "warmup_steps": 20}
        flags.update(overrides)
        if self.dry:
            flags.update(DRY_MODEL)
            flags["steps"] = steps or DRY_STEPS
            flags["warmup_steps"] = 2
            flags["threads"] = 1
        if precision in self.peak:
            flags["peak_gflops"] = self.peak[precision] * 1000.0
        elif device == "cpu":
            flags["peak_gflops"] = 1  # MFU is meaningless there; skips the start-up sgemm
        flags.update(extra or {})
        return [self.bin("mla-train"), f"--flagfile={self.bundle}/recipes/{flagfile}"] + \
            [f"--{k}={v}" for k, v in flags.items()]

    @staticmethod
    def metrics(out_dir):
        rows = []
        with open(os.path.join(out_dir, "metrics.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if "loss" in r and "tokens_per_s" in r:
                    rows.append(r)
        return rows

    def start_cpu_reference(self):
        out_dir = os.path.join(self.work, "cpu_quickstart_fp32")
        threads = 1 if self.dry else max(1, min(8, (os.cpu_count() or 2) - 2))
        cmd = self.train_flags("quickstart", "fp32", out_dir, "cpu",
                               extra={"threads": threads, "peak_gflops": 1})
        self.say("$ (background) " + " ".join(cmd))
        log = open(os.path.join(self.work, "cpu_reference.log"), "w")
        self.cpu_ref = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.bundle_env), out_dir, log,
                        time.monotonic())

    def cpu_reference(self, budget):
        if self.cpu_ref is None:
            raise Skip("not started (not selected)")
        proc, out_dir, log, t0 = self.cpu_ref
        try:  # it has been running since the check began; wait up to the budget more
            rc = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise Fail(f"the CPU run was still going {time.monotonic() - t0:.0f} s after its "
                       f"start ({budget} s of waiting)")
        log.close()
        with open(log.name) as f:
            self.say(f.read())
        if rc != 0:
            raise Fail(f"mla-train --device=cpu exited {rc}")
        rows = self.metrics(out_dir)
        self.runs["cpu:quickstart:fp32"] = {"dir": out_dir, "metrics": rows}
        return {"steps": len(rows), "final_loss": rows[-1]["loss"],
                "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows[len(rows) // 4:])}

    @staticmethod
    def gpu_memory_used_mib():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=5).stdout
            return float(out.strip().splitlines()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None

    def sample_gpu_memory(self, stop, peak):
        """The device's used memory every 0.5 s while a run lasts (its maximum in peak[0])."""
        while not stop.is_set():
            used = self.gpu_memory_used_mib()
            if used is not None:
                peak[0] = max(peak[0], used)
            stop.wait(0.5)

    def train(self, shape, precision, budget):
        if self.dry and precision == "bf16":
            raise Skip("dry run: bf16 runs on the GPU only (the CPU refuses --precision=bf16)")
        name = f"{shape}_{precision}"
        out_dir = os.path.join(self.work, name)
        cmd = self.train_flags(shape, precision, out_dir, self.device,
                               extra={"ckpt_every": 0})
        baseline, peak, stop = None, [0.0], threading.Event()
        sampler = None
        if not self.dry:
            baseline = self.gpu_memory_used_mib()
            sampler = threading.Thread(target=self.sample_gpu_memory, args=(stop, peak))
            sampler.start()
        try:
            out = self.run_ok(cmd, budget)
        finally:
            stop.set()
            if sampler:
                sampler.join()
        rows = self.metrics(out_dir)
        # metrics.jsonl writes a non-finite value as null.
        bad = [r["step"] for r in rows if r["loss"] is None or r["tokens_per_s"] is None]
        if not rows or bad:
            raise Fail(f"no metrics, or non-finite loss at steps {bad[:5]}")
        self.runs[f"{self.device}:{shape}:{precision}"] = {"dir": out_dir, "metrics": rows}
        steady = rows[max(1, len(rows) // 4):] or rows
        plan = re.search(r"^total\s+([\d.]+) MiB", out, re.M)
        data = {"steps": len(rows), "first_loss": rows[0]["loss"], "final_loss": rows[-1]["loss"],
                "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
                "mfu": statistics.median(r["mfu"] for r in steady if r["mfu"] is not None)
                if any(r["mfu"] is not None for r in steady) else None,
                "mfu_peak_tflops": self.peak.get(precision),
                "memory_plan_mib": float(plan.group(1)) if plan else None,
                "gpu_memory_used_mib": (peak[0] - baseline) if baseline is not None else None}
        if data["memory_plan_mib"] and data["gpu_memory_used_mib"]:
            data["memory_used_over_plan"] = data["gpu_memory_used_mib"] / data["memory_plan_mib"]
        return data

    def loss_tolerances(self, rows_cpu):
        """Step 1: both devices start from the same weights and batch, so the
        losses differ by the forward pass's fp32 rounding only: a chain of
        2·L + 1 GEMMs of depth at most K = 4·C, each within (K + 2)·u
        relative, gives (2L + 1)(4C + 2)·u. Later steps: the same batches,
        parameters drifting apart by summation order only; that drift stays
        under the loss's own step-to-step variation: 3σ of the CPU curve's
        first differences (/√2) around the compared step."""
        flagfile, overrides, _ = SHAPES["quickstart"]
        cfg = dict(DRY_MODEL) if self.dry else {}
        with open(os.path.join(self.bundle, "recipes", flagfile)) as f:
            for line in f:
                m = re.match(r"--(\w+)=(\S+)", line.strip())
                if m and m.group(1) not in cfg:
                    cfg[m.group(1)] = m.group(2)
        L, C = int(cfg["n_layer"]), int(cfg["d_model"])
        tol1 = (2 * L + 1) * (4 * C + 2) * U
        return tol1, L, C

    def loss_vs_cpu(self, budget):
        gpu = self.runs.get(f"{self.device}:quickstart:fp32")
        cpu = self.runs.get("cpu:quickstart:fp32")
        if gpu is None or cpu is None:
            raise Skip("needs train:quickstart:fp32 and cpu_reference")
        tol1, L, C = self.loss_tolerances(cpu["metrics"])
        g = {r["step"]: r["loss"] for r in gpu["metrics"]}
        c = {r["step"]: r["loss"] for r in cpu["metrics"]}
        first = min(c)
        rel1 = abs(g[first] - c[first]) / abs(c[first])
        at = 200 if 200 in c and 200 in g else max(set(c) & set(g))
        window = [s for s in sorted(c) if abs(s - at) <= 20 and s - 1 in c]
        diffs = [c[s] - c[s - 1] for s in window]
        sigma = statistics.pstdev(diffs) / math.sqrt(2) if len(diffs) > 1 else 0.0
        tol_at = max(3 * sigma, tol1 * abs(c[at]))
        data = {"step_first": first, "gpu_first": g[first], "cpu_first": c[first],
                "relative_diff_first": rel1, "tolerance_first_relative": tol1,
                "tolerance_first_derivation": f"(2L+1)(4C+2)u with L={L}, C={C}, u=2^-24",
                "step_compared": at, "gpu_at": g[at], "cpu_at": c[at],
                "abs_diff_at": abs(g[at] - c[at]), "tolerance_at": tol_at,
                "tolerance_at_derivation": "max(3 sigma of the CPU loss's first differences "
                                           "/ sqrt(2) over steps at +-20, step-1 tolerance)",
                "curve": [[s, g[s], c[s]] for s in sorted(set(g) & set(c))]}
        if rel1 > tol1:
            raise Fail(f"step {first}: relative loss difference {rel1:.3g} > {tol1:.3g}")
        if abs(g[at] - c[at]) > tol_at:
            raise Fail(f"step {at}: |loss difference| {abs(g[at] - c[at]):.3g} > {tol_at:.3g}")
        return data

    @staticmethod
    def final_checkpoint(run_dir):
        ckpts = sorted((f for f in os.listdir(os.path.join(run_dir, "checkpoints"))
                        if re.fullmatch(r"ckpt-\d+\.h5", f)),
                       key=lambda f: int(re.search(r"\d+", f).group()))
        if not ckpts:
            raise Fail(f"no checkpoint in {run_dir}/checkpoints")
        return os.path.join(run_dir, "checkpoints", ckpts[-1])

    def resume(self, source, budget):
        """Continues the `source` device's quickstart checkpoint for a few steps
        on both devices; the first resumed losses must agree within the step-1
        tolerance and the learning rates and step numbers exactly."""
        src = self.runs.get(f"{source}:quickstart:fp32")
        if src is None:
            raise Skip(f"needs the {source} quickstart fp32 run")
        ckpt = self.final_checkpoint(src["dir"])
        self.run_ok([self.bin("mla-ckpt"), "verify", ckpt], 30)
        last = src["metrics"][-1]["step"]
        rows, ends = {}, []
        for device in ("cpu", self.device) if self.device != "cpu" else ("cpu", "cpu_again"):
            out_dir = os.path.join(self.work, f"resume_{source}_on_{device}")
            cmd = self.train_flags("quickstart", "fp32", out_dir, device.split("_")[0],
                                   steps=last + 5, extra={"resume": ckpt, "threads": 1
                                                          if self.dry else 8})
            self.run_ok(cmd, budget / 2)
            rows[device] = self.metrics(out_dir)
            ends.append(self.final_checkpoint(out_dir))
        a, b = list(rows.values())
        # The two continued states, tensor by tensor (exit 0: identical bits).
        diff_rc, diff_out = self.run([self.bin("mla-ckpt"), "diff"] + ends, 30)
        tol1, _, _ = self.loss_tolerances(a)
        if [r["step"] for r in a] != [r["step"] for r in b] or a[0]["step"] != last + 1:
            raise Fail(f"resumed steps differ: {[r['step'] for r in a]} vs {[r['step'] for r in b]}")
        if [r["lr"] for r in a] != [r["lr"] for r in b]:
            raise Fail("resumed learning rates differ")
        rel = abs(a[0]["loss"] - b[0]["loss"]) / abs(a[0]["loss"])
        data = {"checkpoint": os.path.basename(ckpt), "resumed_at": last + 1,
                "losses": {k: [r["loss"] for r in v] for k, v in rows.items()},
                "relative_diff_first": rel, "tolerance": tol1,
                "final_states_identical": diff_rc == 0,
                "final_states_largest_differences": self.largest_differences(diff_out),
                "note": "the file stores fp32 bits; bit-exact reload is tested on the CPU "
                        "(device_path_training_test, training_end_to_end)"}
        if rel > tol1:
            raise Fail(f"first resumed loss differs by {rel:.3g} relative (> {tol1:.3g})")
        if self.dry and diff_rc != 0:
            raise Fail("two CPU continuations of one checkpoint differ (the CPU is bit-exact)")
        return data

    @staticmethod
    def largest_differences(diff_out, keep=5):
        """mla-ckpt diff's tensor lines (name, group, max abs, max rel) with the
        largest relative differences."""
        rows = []
        for line in diff_out.splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                try:
                    rows.append([parts[0], parts[1], float(parts[2]), float(parts[3])])
                except ValueError:
                    continue
        return sorted(rows, key=lambda r: -r[3])[:keep]

    def eval_greedy(self, budget):
        src = self.runs.get(f"{self.device}:quickstart:fp32")
        if src is None:
            raise Skip("needs train:quickstart:fp32")
        ckpt = self.final_checkpoint(src["dir"])
        gens = {}
        # The dry run compares two CPU runs: the same code path, a trivial answer.
        devices = ("cpu", self.device) if self.device != "cpu" else ("cpu", "cpu_again")
        for device in devices:
            out = os.path.join(self.work, f"generate_{device}.jsonl")
            self.run_ok([self.bin("mla-eval"), "--task=generate", f"--checkpoint={ckpt}",
                         f"--prompts={self.bundle}/recipes/stories.jsonl",
                         f"--max_new_tokens={16 if self.dry else 48}",
                         "--temperature=0", "--threads=4", f"--device={device.split('_')[0]}",
                         f"--out={out}"], budget / 2)
            with open(out) as f:
                gens[device] = [json.loads(line) for line in f]
        a, b = (gens[d] for d in devices)
        key = next(k for k in ("tokens", "text") if k in a[0])
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x[key] != y[key]]
        data = {"prompts": len(a), "compared": list(devices), "different": diff}
        if len(a) != len(b) or diff:
            raise Fail(f"{len(diff)} of {len(a)} greedy continuations differ "
                       f"(first: prompt {diff[0] if diff else len(b)})")
        return data

    def decode_speed(self, budget):
        if self.dry:
            shape, batches, ctx = "layers=2,d_model=32,heads=4,vocab=256,context=64", "1,2", "64"
        else:
            shape, batches, ctx = "layers=9,d_model=512,heads=8,vocab=4096,context=512", "1,32", "512"
        kinds = {"mha": "attention=mha", "mla_rope": "attention=mla_rope,kv_rank=" +
                 ("16,rope_dim=4" if self.dry else "256,rope_dim=32")}
        data = {}
        for kind, attn in kinds.items():
            out = os.path.join(self.work, f"report_{kind}.json")
            self.run_ok([self.bin("mla-eval"), "--task=report", f"--random_init_config={attn},{shape}",
                         f"--bench_batches={batches}", f"--bench_contexts={ctx}", "--threads=4",
                         f"--device={self.device}", f"--out={out}"], budget / 2)
            with open(out) as f:
                report = json.load(f)
            data[kind] = [{k: c[k] for k in ("decode", "batch", "context", "decode_tokens_per_s")}
                          for c in report["speed"]]
        # The target: MLA+RoPE (its faster decode mode) at least MHA's speed at the largest batch.
        top = max(c["batch"] for c in data["mha"])
        best = {k: max(c["decode_tokens_per_s"] for c in v if c["batch"] == top)
                for k, v in data.items()}
        data["largest_batch"] = top
        data["mla_rope_over_mha"] = best["mla_rope"] / best["mha"]
        return data

    def peer(self, mode, budget):
        if self.dry and mode == "compiled":
            raise Skip("dry run: torch.compile is not timed on the CPU")
        cmd = [self.python, os.path.join(self.bundle, "gpu_peer.py"), f"--device={self.device}",
               f"--shape={'tiny' if self.dry else 'paper'}", f"--mode={mode}",
               "--steps=" + ("3" if self.dry else "30")]
        out = self.run_ok(cmd, budget, env=dict(os.environ))
        peer = json.loads(out.strip().splitlines()[-1])
        # Against mla-train on the same shape: paper bf16 (quickstart fp32 in a dry run).
        ours = self.runs.get(f"{self.device}:paper:bf16" if not self.dry else
                             f"{self.device}:quickstart:fp32")
        if ours:
            steady = ours["metrics"][len(ours["metrics"]) // 4:]
            peer["mlatrain_tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in steady)
            peer["mlatrain_over_peer"] = peer["mlatrain_tokens_per_s"] / peer["tokens_per_s"]
        return peer

    # ---- the whole check
    def main(self):
        self.say(f"gpu-check: bundle {self.bundle}, {'dry run (CPU)' if self.dry else 'GPU'}, "
                 f"deadline {self.deadline} s")
        if self.selected("cpu_reference") and self.selected("loss_vs_cpu"):
            self.start_cpu_reference()
        self.step("device", 15, self.device_info)
        self.step("gemm_peak", 30 if self.dry else 60, self.gemm_peak)
        tests_dir = os.path.join(self.bundle, "tests")
        for t in sorted(os.listdir(tests_dir)) if os.path.isdir(tests_dir) else []:
            self.step(f"test:{t}", 30 if self.dry else 90,
                      lambda b, t=t: self.gpu_test(os.path.join(tests_dir, t), b))
        train_budget = 30 if self.dry else 90
        self.step("train:quickstart:fp32", train_budget, lambda b: self.train("quickstart", "fp32", b))
        self.step("train:paper:bf16", train_budget, lambda b: self.train("paper", "bf16", b))
        self.step("peer:eager", 60 if self.dry else 60, lambda b: self.peer("eager", b))
        self.step("peer:compiled", 30 if self.dry else 150, lambda b: self.peer("compiled", b))
        self.step("train:paper:fp32", train_budget, lambda b: self.train("paper", "fp32", b))
        self.step("train:quickstart:bf16", train_budget, lambda b: self.train("quickstart", "bf16", b))
        self.step("cpu_reference", 60 if self.dry else 120, self.cpu_reference)
        self.step("loss_vs_cpu", 5, self.loss_vs_cpu)
        self.step("resume:gpu_to_cpu", 30 if self.dry else 60, lambda b: self.resume(self.device, b))
        self.step("resume:cpu_to_gpu", 30 if self.dry else 60, lambda b: self.resume("cpu", b))
        self.step("eval_greedy", 30 if self.dry else 60, self.eval_greedy)
        self.step("decode_speed", 30 if self.dry else 60, self.decode_speed)
        if self.cpu_ref and self.cpu_ref[0].poll() is None:
            self.cpu_ref[0].kill()
        summary = {"schema_version": SCHEMA_VERSION, "mode": "dry-run" if self.dry else "gpu",
                   "device": self.device, "bundle_manifest": self.manifest(),
                   "seconds": round(self.elapsed(), 1), "deadline_s": self.deadline,
                   "counts": {s: sum(1 for r in self.steps if r["status"] == s)
                              for s in ("ok", "failed", "skipped")},
                   "steps": self.steps}
        with open(os.path.join(self.out, "gpu-check.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(f"{'step':34} {'status':8} {'s':>6}  reason / figures")
        for r in self.steps:
            figures = {k: v for k, v in r["data"].items()
                       if k in ("tokens_per_s", "mfu", "fp32_tflops", "bf16_tflops", "name",
                                "mlatrain_over_peer", "passed", "relative_diff_first",
                                "mla_rope_over_mha", "memory_used_over_plan")}
            print(f"{r['name']:34} {r['status']:8} {r['seconds']:6.1f}  {r['reason'] or figures}")
        print(f"gpu-check: {summary['counts']} in {summary['seconds']} s; "
              f"{os.path.join(self.out, 'gpu-check.json')}")
        return 1 if summary["counts"]["failed"] else 0

    def manifest(self):
        path = os.path.join(self.bundle, "MANIFEST")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read().splitlines()[:6]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu-check.json and gpu-check.log")
    ap.add_argument("--work", help="folder for the runs (default: a new temporary folder)")
    ap.add_argument("--dry-run", action="store_true", help="CPU device, tiny shapes, same JSON")
    ap.add_argument("--only", help="comma-separated step names or prefixes (e.g. test,train)")
    ap.add_argument("--deadline", type=float, help="seconds for the whole check "
                    "(default 450 on the GPU, 110 in a dry run)")
    return Check(ap.parse_args()).main()


if __name__ == "__main__":
    sys.exit(main())
