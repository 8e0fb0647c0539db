"""Bad inputs to mla-train, mla-ckpt, mla-calc and mla-bench that the other
test folders do not cover (the full table is docs/bad-inputs.md). Each test
gives one bad input and checks: a non-zero exit, exactly one error line
naming the bad thing, no crash (signal, abort, MPI abort banner), and that
nothing was written that looks like a checkpoint.

Run by ctest as `python3 bad_input_test.py BUILD_DIR`.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mla_programs import BENCH, CALC, CKPT, DATA_TOOL, TRAIN, make_corpus, train_flags  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1")

TMP = tempfile.mkdtemp(prefix="mla-bad-input-test-")
DATA = os.path.join(TMP, "data")
GOOD_RUN = os.path.join(TMP, "good")  # one finished run whose checkpoint the tests damage


def setUpModule():
    make_corpus(DATA, 600, 400)
    proc = subprocess.run(train_cmd(GOOD_RUN), capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


# One block at T=16, two steps: enough for a checkpoint to damage.
BAD_INPUT_RUN = {
    "n_layer": 1, "d_model": 32, "n_head": 4, "context_length": 16, "kv_rank": 8, "rope_dim": 4,
    "global_batch_tokens": 16 * 4, "micro_batch": 4, "steps": 2, "warmup_steps": 1,
    "eval_batches": 1,
}


def train_cmd(out_dir, **overrides):
    return [TRAIN] + train_flags(DATA, out_dir, BAD_INPUT_RUN, **overrides)


def good_checkpoint():
    d = os.path.join(GOOD_RUN, "checkpoints")
    with open(os.path.join(d, "latest")) as f:
        return os.path.join(d, f.read().strip())


class BadInput(unittest.TestCase):
    def run_tool(self, cmd, timeout=60):
        return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)

    def assert_refused(self, proc, *needles, prefix="mla-train: error:"):
        self.assertNotEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertGreater(proc.returncode, 0, f"killed by signal {-proc.returncode}")
        text = proc.stderr
        for bad in ("Aborted", "core dumped", "MPI_ABORT", "Check failed", "terminate called",
                    "Segmentation"):
            self.assertNotIn(bad, text)
        errors = [l for l in text.splitlines() if l.startswith(prefix)] if prefix else text.splitlines()
        self.assertEqual(len(errors), 1, text)
        for n in needles:
            self.assertIn(n, errors[0])
        return errors[0]

    def refused_train(self, *needles, extra=(), **overrides):
        out = os.path.join(TMP, self.id().rsplit(".", 1)[1])
        proc = self.run_tool(train_cmd(out, **overrides) + list(extra))
        line = self.assert_refused(proc, *needles)
        ck = os.path.join(out, "checkpoints")
        self.assertFalse(os.path.isdir(ck) and any(n.endswith(".h5") for n in os.listdir(ck)))
        return line


class MlaTrainFlags(BadInput):
    def test_missing_flagfile_is_named(self):
        proc = self.run_tool([TRAIN, f"--flagfile={TMP}/no-such.flags"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no-such.flags", proc.stderr)

    def test_flagfile_with_unknown_flag_names_it(self):
        ff = os.path.join(TMP, "typo.flags")
        with open(ff, "w") as f:
            f.write("--n_layers=4\n")
        proc = self.run_tool([TRAIN, f"--flagfile={ff}"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("n_layers", proc.stderr)

    def test_unknown_flag_is_named(self):
        proc = self.run_tool(train_cmd(os.path.join(TMP, "x")) + ["--learning_rate=1"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("learning_rate", proc.stderr)

    def test_non_numeric_value_is_named(self):
        proc = self.run_tool(train_cmd(os.path.join(TMP, "x"), steps="ten"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("steps", proc.stderr)
        self.assertIn("ten", proc.stderr)

    def test_negative_steps_is_refused(self):
        self.refused_train("steps", steps=-5)

    def test_no_steps_and_no_token_budget_is_refused(self):
        self.refused_train("--steps", steps=0, token_budget=0)

    def test_micro_batch_not_dividing_the_rank_batch_is_refused(self):
        self.refused_train("micro_batch=3", micro_batch=3)

    def test_global_batch_not_a_multiple_of_context_is_refused(self):
        self.refused_train("global_batch_tokens=70", "context_length=16", global_batch_tokens=70)

    def test_unknown_attention_kind_is_named(self):
        # --attention is an AttentionKind flag: refused while the flags are parsed.
        proc = self.run_tool(train_cmd(os.path.join(TMP, "kind"), attention="mla2"))
        self.assert_refused(proc, "'mla2'", "attention", "expected mha, mha_rope, mla or mla_rope",
                            prefix="ERROR: Illegal value")

    def test_heads_not_dividing_width_is_named(self):
        self.refused_train("n_head=5", n_head=5)

    def test_zero_stage_2_is_refused(self):
        self.refused_train("zero=2", zero=2)

    def test_cuda_device_without_a_gpu_names_the_reason(self):
        # Where CUDA cannot run (no GPU, or a build without CUDA) the run stops
        # at start with "--device=cuda: <reason>"; with a GPU it trains
        # (tests/train/cuda_training_test.py).
        if shutil.which("nvidia-smi") and subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True).stdout.startswith("GPU "):
            self.skipTest("a GPU is visible")
        self.refused_train("--device=cuda: ", device="cuda")

    def test_unknown_device_is_named(self):
        self.refused_train("tpu", device="tpu")

    def test_negative_learning_rate_is_refused(self):
        self.refused_train("lr", lr=-1)

    def test_min_lr_above_lr_is_refused(self):
        self.refused_train("min_lr", lr=1e-3, min_lr=1e-2)

    def test_overflowing_learning_rate_is_refused(self):
        self.refused_train("lr", lr=1e39)

    def test_vocab_smaller_than_the_shard_is_named(self):
        self.refused_train("vocab_size=100", "train.bin", vocab_size=100)

    def test_flagfile_with_crlf_line_endings_is_refused_showing_the_cr(self):
        ff = os.path.join(TMP, "dos.flags")
        with open(ff, "wb") as f:
            f.write(b"--steps=2\r\n--n_layer=1\r\n")
        proc = self.run_tool([TRAIN, f"--flagfile={ff}"])
        self.assert_refused(proc, "dos.flags line 1", "'--steps=2\\r'")

    def test_boolean_flag_followed_by_a_word_is_refused(self):
        # Abseil reads `--skip_nonfinite false` as --skip_nonfinite=true and
        # a stray "false".
        self.refused_train("unexpected argument 'false'", extra=["--skip_nonfinite", "false"])

    def test_stray_positional_argument_is_refused(self):
        self.refused_train("unexpected argument 'data/train.bin'", extra=["data/train.bin"])

    def test_negative_collective_timeout_is_refused(self):
        self.refused_train("collective_timeout", collective_timeout=-1)

    def test_unknown_resume_change_item_is_named(self):
        self.refused_train("allow_resume_change: unknown item 'model'", allow_resume_change="model")

    def test_model_that_cannot_fit_in_memory_is_refused_with_the_plan(self):
        out = os.path.join(TMP, "too-big")
        proc = self.run_tool(train_cmd(out, d_model=8192, n_head=8, n_layer=48, kv_rank=64))
        self.assert_refused(proc, "MiB of host memory per rank", "memory plan per rank")
        # The plan itself follows, one category per line (mla-calc's numbers).
        self.assertRegex(proc.stderr, r"\nparameters +[0-9.]+ MiB")
        self.assertFalse(os.path.isdir(os.path.join(out, "checkpoints")))

    def test_threads_beyond_the_machine_are_capped_with_a_warning(self):
        out = os.path.join(TMP, "threads")
        proc = self.run_tool(train_cmd(out, threads=100000, steps=1))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("--threads=100000 capped at the", proc.stderr)


class MlaTrainFiles(BadInput):
    def test_missing_train_shard_is_named(self):
        self.refused_train("missing.bin", train_data=os.path.join(TMP, "missing.bin"))

    def test_missing_val_shard_is_named(self):
        self.refused_train("no-val.bin", val_data=os.path.join(TMP, "no-val.bin"))

    def test_text_file_as_train_shard_is_not_a_shard(self):
        p = os.path.join(TMP, "text.bin")
        with open(p, "w") as f:
            f.write("Once upon a time there was a shard that was not one." * 10)
        self.refused_train("text.bin", "bad magic", train_data=p)

    def test_truncated_val_shard_is_named(self):
        p = os.path.join(TMP, "val-cut.bin")
        with open(f"{DATA}/val.bin", "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(raw[: len(raw) - 3])
        self.refused_train("val-cut.bin", val_data=p)

    def test_missing_tokenizer_is_named(self):
        self.refused_train("no.model", tokenizer=os.path.join(TMP, "no.model"))

    def test_out_dir_that_is_a_file_is_refused(self):
        p = os.path.join(TMP, "a-file")
        with open(p, "w") as f:
            f.write("x")
        proc = self.run_tool(train_cmd(p))
        self.assert_refused(proc, "a-file")

    def test_resume_from_missing_checkpoint_is_named(self):
        self.refused_train("nothing-here.h5", resume=os.path.join(TMP, "nothing-here.h5"))

    def test_resume_from_corrupt_checkpoint_names_file_and_damage(self):
        p = os.path.join(TMP, "corrupt.h5")
        shutil.copy(good_checkpoint(), p)
        # Flip one byte in the middle of a parameter tensor (found with h5py,
        # independently of mlatrain, and checked to hold the tensor's bytes):
        # the whole-file digest must catch it before HDF5 reads anything.
        with h5py.File(p, "r") as f:
            dset = f["model"]["wte.weight"]
            at = dset.id.get_offset() + dset.id.get_storage_size() // 2
            want = dset[()].tobytes()[dset.id.get_storage_size() // 2]
        with open(p, "r+b") as f:
            f.seek(at)
            b = f.read(1)
            self.assertEqual(b[0], want, "h5py's offset does not point at the tensor's bytes")
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))
        self.refused_train("corrupt.h5", "damaged: digest mismatch", resume=p)

    def test_resume_from_truncated_checkpoint_names_file(self):
        p = os.path.join(TMP, "cut.h5")
        with open(good_checkpoint(), "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(raw[: len(raw) // 2])
        self.refused_train("cut.h5", f"truncated: the header says {len(raw)} bytes, the file has {len(raw) // 2}",
                           resume=p)

    def test_resume_with_another_model_config_says_so(self):
        self.refused_train("different model config", resume=good_checkpoint(), d_model=64)

    def test_resume_from_a_shard_instead_of_a_checkpoint_is_refused(self):
        self.refused_train("train.bin", resume=f"{DATA}/train.bin")

    def test_val_shard_with_a_larger_vocabulary_is_refused_before_training(self):
        # Same tokens, header vocabulary 65536 (the checksum covers the
        # tokens only, so the shard stays valid): its ids could reach past
        # the model's embedding.
        p = os.path.join(TMP, "val-v65536.bin")
        with open(f"{DATA}/val.bin", "rb") as f:
            raw = bytearray(f.read())
        raw[16:20] = (65536).to_bytes(4, "little")
        with open(p, "wb") as f:
            f.write(raw)
        self.refused_train("val-v65536.bin", "(65536) exceeds the model's vocab_size=400", val_data=p,
                           eval_interval=0)

    def test_tokenizer_with_more_pieces_than_the_model_is_refused(self):
        d = os.path.join(TMP, "tok600")
        os.makedirs(d, exist_ok=True)
        shutil.copy(f"{DATA}/stories.txt", d)
        subprocess.run([DATA_TOOL, "tokenizer", "--vocab_size", "600", "--out", d], check=True,
                       capture_output=True)
        self.refused_train("tokenizer.model has 600 pieces, more than the model's vocab_size=400",
                           tokenizer=os.path.join(d, "tokenizer.model"))

    def refused_resume(self, detail, **overrides):
        # One error line, then one line per difference with both values.
        proc = self.run_tool(train_cmd(os.path.join(TMP, self.id().rsplit(".", 1)[1]),
                                       resume=good_checkpoint(), **overrides))
        self.assert_refused(proc, "was written by a different run")
        self.assertIn(detail, proc.stderr)
        self.assertIn("--allow_resume_change", proc.stderr)

    def test_resume_with_another_global_batch_shows_both_values(self):
        self.refused_resume("  global_batch_tokens: checkpoint 64; this run 128",
                            global_batch_tokens=128)

    def test_resume_with_another_validation_shard_is_refused(self):
        self.refused_resume("  val_data: checkpoint fnv1a64 ", val_data=f"{DATA}/train.bin")

    def test_resume_past_the_last_step_is_refused(self):
        self.refused_train("is at step 2, past this run's 1 steps", resume=good_checkpoint(), steps=1)

    def test_second_job_on_a_locked_out_dir_is_refused(self):
        # The holder here is a plain process holding the same OFD lock
        # (tests/fault/reliability_test.py runs two mla-train jobs).
        out = os.path.join(TMP, "locked")
        os.makedirs(out, exist_ok=True)
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl, os, struct, sys, time\n"
             f"fd = os.open({os.path.join(out, 'mla-train.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
             "fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0) + bytes(4))\n"
             "os.write(fd, b'pid 4242 on host elsewhere, started 2026-01-01T00:00:00Z')\n"
             "print('locked', flush=True); time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            proc = self.run_tool(train_cmd(out))
            self.assert_refused(proc, "in use by another mla-train job",
                                "pid 4242 on host elsewhere, started 2026-01-01T00:00:00Z")
        finally:
            holder.kill()
            holder.wait()


class OtherTools(BadInput):
    def test_ckpt_verify_of_missing_path_is_named(self):
        proc = self.run_tool([CKPT, "verify", os.path.join(TMP, "nope.h5")])
        self.assert_refused(proc, "nope.h5", prefix="mla-ckpt")

    def test_ckpt_verify_of_empty_directory_is_refused(self):
        d = os.path.join(TMP, "empty-run")
        os.makedirs(d, exist_ok=True)
        proc = self.run_tool([CKPT, "verify", d])
        self.assert_refused(proc, "empty-run", prefix="mla-ckpt")

    def test_ckpt_export_onto_its_input_is_refused(self):
        ck = good_checkpoint()
        proc = self.run_tool([CKPT, "export", f"--out={ck}", "--force", ck])
        self.assert_refused(proc, "is the input", prefix="mla-ckpt")

    def test_ckpt_export_onto_an_existing_file_needs_force(self):
        out = os.path.join(TMP, "existing.safetensors")
        with open(out, "w") as f:
            f.write("x")
        proc = self.run_tool([CKPT, "export", f"--out={out}", good_checkpoint()])
        self.assert_refused(proc, "exists; pass --force", prefix="mla-ckpt")

    def test_ckpt_unknown_subcommand_is_refused(self):
        proc = self.run_tool([CKPT, "frobnicate", good_checkpoint()])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("frobnicate", proc.stderr)

    def test_calc_invalid_config_is_named(self):
        proc = self.run_tool([CALC, "--n_head=5", "--d_model=32"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("n_head", proc.stderr)

    def test_bench_unknown_attention_kind_is_named(self):
        proc = self.run_tool([BENCH, "--kinds=mla2", "--steps=1", "--warmup=0"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("mla2", proc.stderr)

    def test_bench_cuda_device_without_a_gpu_names_the_reason(self):
        if shutil.which("nvidia-smi") and subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True).stdout.startswith("GPU "):
            self.skipTest("a GPU is visible")
        proc = self.run_tool([BENCH, "--device=cuda", "--steps=1", "--warmup=0"])
        self.assert_refused(proc, "--device=cuda: ", prefix="mla-bench: ")

    def test_bench_alias_and_its_flag_together_are_refused(self):
        proc = self.run_tool([BENCH, "--layers=2", "--n_layer=3", "--steps=1", "--warmup=0"])
        self.assert_refused(proc, "--layers is an alias of --n_layer", prefix="mla-bench: ")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:])
