"""The mlatrain Python package against the C++ programs, on checkpoints that
mla-train writes: for each attention kind, the validation loss equals
`mla-eval --task=loss`, greedy and seeded sampled continuations equal
`mla-eval --task=generate` token for token, and damaged files are refused with
the messages `mla-eval` gives; version 1 files and safetensors exports load to
the same model.

Run by ctest as `python3 eval_parity_test.py BUILD_DIR` (label `python`).

Fixtures (setUpModule, ~10 s): 400 generated stories, a 400-token tokenizer and
shards (mla-data); per kind a tiny model (2 blocks, d=32, 4 heads, context 96)
trained one step by mla-train, the options spread over the kinds (untied head,
query compression, latent RMSNorm, rope_dim, rope_theta). Its matrices are then
scaled by 10 with h5py (as tests/launch/mla_eval_fixture.cc does) so attention
and logits are far from uniform and every term of the model moves the loss, and
the file is resealed with mlatrain.checkpoint.seal; mla-eval accepting it checks the
package's digest against the C++ one.

Loss tolerance. Both programs compute in float32 (unit roundoff u = 2^-24);
the package in float64 is the exact value up to ~1e-15. A sum of n float32
terms in any order is off by at most (n-1)·u·Σ|terms| (γ_n), so a logit, the end
of a chain of reductions whose lengths add up to K (per block: both layer-norm
moments 2·C twice, the projections C, R or Q, the score D+P, softmax and value
mix 2·T, out-projection C, MLP C and 4·C; then ln_f 2·C, the head C and the
log-sum-exp V), is off by at most K·u·max|z| to first order, and a position's
loss, lse(z) − z_target, by twice that. The mean over the B·T positions of a
forward pass adds B·T·u·loss, the sum over windows in double nothing of
note. `loss_tolerance` returns that sum; the C++ result and the package's own
float32 result must each lie within it of the float64 loss.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))
from mlatrain import CheckpointError, open_checkpoint  # noqa: E402
from mlatrain.checkpoint import seal  # noqa: E402
from mlatrain.torch import GPT  # noqa: E402

BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.environ["MLA_BINARY_DIR"]
DATA_TOOL = os.path.join(BUILD, "tools", "mla-data", "mla-data")
TRAIN = os.path.join(BUILD, "launch", "mla-train")
EVAL = os.path.join(BUILD, "launch", "mla-eval")
CKPT_TOOL = os.path.join(BUILD, "tools", "mla-ckpt", "mla-ckpt")
U = 2.0 ** -24
CONTEXT = 96
EVAL_BATCH = 8  # mla-eval's --batch default: windows per forward pass

# One model per attention kind; the options spread over them.
KINDS = {
    "mha": {"attention": "mha", "tied_embeddings": "false"},
    "mha_rope": {"attention": "mha_rope", "rope_theta": "500"},
    "mla": {"attention": "mla", "kv_rank": "16", "q_rank": "16", "latent_norm": "true",
            "tied_embeddings": "false"},
    "mla_rope": {"attention": "mla_rope", "kv_rank": "16", "rope_dim": "8", "q_rank": "12",
                 "latent_norm": "true"},
    "mla_rope_plain_query": {"attention": "mla_rope", "kv_rank": "8", "rope_dim": "4",
                             "tied_embeddings": "false"},
}
PROMPT = "Once upon a time, there was a little girl named Lily. She"
GREEDY_TOKENS = 60
SAMPLED = {"temperature": 0.9, "top_k": 50, "top_p": 0.9, "seed": 7}

TMP = tempfile.mkdtemp(prefix="mla-python-test-")
DATA = os.path.join(TMP, "data")
FIXTURES = {}  # kind -> {"written": C++-sealed file, "ckpt": scaled file, "loss": .., "gen": ..}


def run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def scale_matrices(path, factor):
    with h5py.File(path, "r+") as f:
        for name, ds in f["model"].items():
            if ds.ndim == 2:
                ds[...] = ds[...] * np.float32(factor)
    seal(path)


def setUpModule():
    run([DATA_TOOL, "all", "--count", "400", "--vocab_size", "400", "--threads", "1",
         "--out", DATA])
    prompts = os.path.join(TMP, "prompts.jsonl")
    with open(prompts, "w") as f:
        f.write(json.dumps({"id": "greedy", "prompt": PROMPT,
                            "max_new_tokens": GREEDY_TOKENS}) + "\n")
        f.write(json.dumps(dict(SAMPLED, id="sampled", prompt=PROMPT,
                                max_new_tokens=GREEDY_TOKENS)) + "\n")
    for kind, options in KINDS.items():
        out = os.path.join(TMP, kind)
        flags = {"n_layer": 2, "d_model": 32, "n_head": 4, "context_length": CONTEXT,
                 "train_data": f"{DATA}/train.bin", "val_data": "",
                 "tokenizer": f"{DATA}/tokenizer.model", "global_batch_tokens": 2 * CONTEXT,
                 "micro_batch": 2, "steps": 1, "warmup_steps": 1, "out_dir": out,
                 "peak_gflops": 1, "threads": 1, **options}
        run([TRAIN] + [f"--{k}={v}" for k, v in flags.items()])
        written = os.path.join(out, "checkpoints", "ckpt-1.h5")
        ckpt = os.path.join(out, "scaled.h5")
        shutil.copyfile(written, ckpt)
        scale_matrices(ckpt, 10.0)
        loss_out, gen_out = os.path.join(out, "loss.json"), os.path.join(out, "gen.jsonl")
        run([EVAL, "--task=loss", f"--checkpoint={ckpt}", f"--val_shard={DATA}/val.bin",
             f"--out={loss_out}", "--threads=1"])
        run([EVAL, "--task=generate", f"--checkpoint={ckpt}", f"--prompts={prompts}",
             f"--out={gen_out}", "--threads=1"])
        with open(loss_out) as f:
            loss = json.load(f)
        with open(gen_out) as f:
            gen = {g["id"]: g for g in map(json.loads, f)}
        FIXTURES[kind] = {"written": written, "ckpt": ckpt, "loss": loss, "gen": gen}


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def val_tokens():
    with open(os.path.join(DATA, "val.bin"), "rb") as f:
        return np.frombuffer(f.read(), dtype="<u2", offset=64).astype(np.int64)


def loss_tolerance(cfg, seq_len, max_logit, loss):
    """The float32 error bound of the module docstring."""
    C, T, V, M = cfg.d_model, seq_len, cfg.vocab_size, cfg.mlp_ratio * cfg.d_model
    projections = C + (cfg.kv_rank + cfg.q_rank if cfg.is_mla else 0)
    per_block = 4 * C + projections + cfg.qk_head_dim + 2 * T + C + 4 * C + C + M
    chain = cfg.n_layer * per_block + 2 * C + C + V
    return 2 * chain * U * max_logit + EVAL_BATCH * T * U * loss


class LossTest(unittest.TestCase):
    def test_validation_loss_equals_mla_eval_for_each_kind(self):
        tokens = val_tokens()
        for kind, fx in FIXTURES.items():
            with self.subTest(kind):
                model32 = GPT.from_checkpoint(fx["ckpt"])
                model64 = GPT.from_checkpoint(fx["ckpt"], dtype=torch.float64)
                T = model32.config.context_length
                windows = (len(tokens) - 1) // T
                self.assertEqual(fx["loss"]["windows"], windows)
                self.assertEqual(fx["loss"]["seq_len"], T)
                exact = model64.loss(tokens)
                with torch.no_grad():
                    max_logit = float(model64(tokens[:T][None]).abs().max())
                tol = loss_tolerance(model32.config, T, max_logit, exact)
                self.assertLess(abs(fx["loss"]["loss"] - exact), tol,
                                f"mla-eval {fx['loss']['loss']!r}, float64 {exact!r}")
                self.assertLess(abs(model32.loss(tokens) - exact), tol)
                # Far from uniform: the scaled model is not the uniform guess log V.
                self.assertGreater(abs(exact - np.log(model32.config.vocab_size)), 0.1)

    def test_tolerance_is_below_the_effect_of_a_wrong_score_scale(self):
        # Scoring mla_rope with 1/sqrt(D) instead of 1/sqrt(D + P) (the same as
        # scaling every query by sqrt((D + P)/D)) must move the loss by more
        # than the tolerance, or the test above could not see such a slip.
        tokens = val_tokens()
        model = GPT.from_checkpoint(FIXTURES["mla_rope"]["ckpt"], dtype=torch.float64)
        cfg, T = model.config, model.config.context_length
        exact = model.loss(tokens)
        with torch.no_grad():
            max_logit = float(model(tokens[:T][None]).abs().max())
            for name, p in model.named_parameters():
                if name.endswith(("attn.w_uq", "attn.w_qr")):
                    p.mul_(np.sqrt(cfg.qk_head_dim / cfg.head_dim))
        self.assertGreater(abs(model.loss(tokens) - exact),
                           2 * loss_tolerance(cfg, T, max_logit, exact))


class GenerationTest(unittest.TestCase):
    def continuation(self, fx, key, **sampling):
        model = GPT.from_checkpoint(fx["ckpt"])
        want = fx["gen"][key]
        prompt = model.tokenizer.encode(PROMPT)
        self.assertEqual(len(prompt), want["prompt_tokens"])
        tokens, stop = model.generate_tokens(prompt, GREEDY_TOKENS, **sampling)
        return model, want, tokens, stop

    def test_greedy_continuation_equals_mla_eval_for_each_kind(self):
        for kind, fx in FIXTURES.items():
            with self.subTest(kind):
                model, want, tokens, stop = self.continuation(fx, "greedy")
                self.assertGreaterEqual(len(want["tokens"]), 50, want)
                self.assertEqual(tokens, want["tokens"])
                self.assertEqual(stop, want["stop"])
                self.assertEqual(model.tokenizer.decode(tokens), want["text"])

    def test_naive_and_absorbed_decoding_give_the_same_greedy_tokens(self):
        for kind in ("mla", "mla_rope"):
            with self.subTest(kind):
                fx = FIXTURES[kind]
                _, want, tokens, _ = self.continuation(fx, "greedy", absorbed=False)
                self.assertEqual(tokens, want["tokens"])

    def test_seeded_sampling_equals_mla_eval_for_each_kind(self):
        for kind, fx in FIXTURES.items():
            with self.subTest(kind):
                _, want, tokens, stop = self.continuation(fx, "sampled", **SAMPLED)
                self.assertEqual(tokens, want["tokens"])
                self.assertEqual(stop, want["stop"])
                greedy = fx["gen"]["greedy"]["tokens"]
                self.assertNotEqual(tokens[:len(greedy)], greedy[:len(tokens)])


class IntegrityTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="damaged-", dir=TMP)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def damaged(self, edit):
        path = os.path.join(self.dir, "ckpt-1.h5")
        shutil.copyfile(FIXTURES["mla_rope"]["written"], path)
        with open(path, "r+b") as f:
            edit(f)
        return path

    @staticmethod
    def flip(offset):
        def edit(f):
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ 0x01]))
        return edit

    def assert_refused_like_mla_eval(self, path, text):
        with self.assertRaises(CheckpointError) as caught:
            open_checkpoint(path)
        message = str(caught.exception)
        self.assertTrue(message.startswith(f"checkpoint {path}: "), message)
        self.assertIn(text, message)
        with self.assertRaises(CheckpointError):
            GPT.from_checkpoint(path)
        proc = subprocess.run([EVAL, "--task=loss", f"--checkpoint={path}",
                               f"--val_shard={DATA}/val.bin"], capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(message, proc.stderr)

    def test_the_writers_checkpoint_passes(self):
        ckpt = open_checkpoint(FIXTURES["mla_rope"]["written"])
        self.assertEqual(ckpt.format_version, 2)
        self.assertEqual(ckpt.step, 1)
        self.assertEqual(ckpt.config.attention, "mla_rope")
        self.assertEqual(ckpt.metadata["file_bytes"],
                         os.path.getsize(FIXTURES["mla_rope"]["written"]))
        show = subprocess.run([CKPT_TOOL, "show", FIXTURES["mla_rope"]["written"]],
                              capture_output=True, text=True)
        self.assertIn(ckpt.metadata["digest"], show.stdout)

    def test_a_flipped_byte_after_the_header_is_refused(self):
        size = os.path.getsize(FIXTURES["mla_rope"]["written"])
        for offset in (4096, size // 2, size - 1):
            with self.subTest(offset=offset):
                path = self.damaged(self.flip(offset))
                self.assert_refused_like_mla_eval(path, "damaged: digest mismatch")

    def test_a_flipped_header_byte_is_refused(self):
        self.assert_refused_like_mla_eval(self.damaged(self.flip(20)),
                                          "header is damaged: its check says")

    def test_a_truncated_file_is_refused(self):
        size = os.path.getsize(FIXTURES["mla_rope"]["written"])
        self.assert_refused_like_mla_eval(self.damaged(lambda f: f.truncate(size - 100)),
                                          f"truncated: the header says {size} bytes")

    def test_a_sealed_file_with_a_non_finite_weight_is_refused_as_mla_ckpt_verify_does(self):
        path = self.damaged(lambda f: None)
        with h5py.File(path, "r+") as f:
            f["model/blocks.1.attn.w_kr"][2, 3] = np.nan
        seal(path)
        with self.assertRaisesRegex(CheckpointError,
                                    "tensor blocks.1.attn.w_kr holds 1 non-finite value"):
            open_checkpoint(path)
        self.assertNotEqual(subprocess.run([CKPT_TOOL, "verify", path],
                                           capture_output=True).returncode, 0)

    def test_a_directory_resolves_to_its_latest_checkpoint(self):
        directory = os.path.dirname(FIXTURES["mha"]["written"])
        self.assertEqual(open_checkpoint(directory).path, FIXTURES["mha"]["written"])


def write_version_1(src, dst):
    """The checkpoint `src` as format version 1 lays it out: no userblock, every
    dataset chunked with a fletcher32 sum per chunk (docs/checkpoint-format.md)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        g.attrs["format_version"] = np.int64(1)
        config = g.create_group("config")
        for key, value in f["config"].attrs.items():
            config.attrs[key] = value
        model = g.create_group("model")
        for name, ds in f["model"].items():
            out = model.create_dataset(name, data=ds[()], chunks=True, fletcher32=True)
            out.attrs["offset"] = ds.attrs["offset"]
        g.create_dataset("tokenizer/model", data=f["tokenizer/model"][()], chunks=True,
                         fletcher32=True)


class OtherFormatsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="formats-", dir=TMP)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def assert_same_model(self, a, b):
        self.assertEqual(a.config, b.config)
        tokens = torch.tensor([[5, 17, 300, 2, 41, 41, 7]])
        with torch.no_grad():
            torch.testing.assert_close(a(tokens), b(tokens), rtol=0, atol=0)

    def test_a_version_1_file_loads_the_same_model(self):
        path = os.path.join(self.dir, "ckpt-1.h5")
        write_version_1(FIXTURES["mla"]["ckpt"], path)
        ckpt = open_checkpoint(path)
        self.assertEqual(ckpt.format_version, 1)
        self.assert_same_model(GPT.from_checkpoint(path),
                               GPT.from_checkpoint(FIXTURES["mla"]["ckpt"]))

    def test_a_damaged_chunk_of_a_version_1_file_is_refused(self):
        path = os.path.join(self.dir, "ckpt-1.h5")
        write_version_1(FIXTURES["mla"]["ckpt"], path)
        with h5py.File(path, "r") as f:
            offset = f["model/wte.weight"].id.get_chunk_info(0).byte_offset
        with open(path, "r+b") as f:
            f.seek(offset + 8)
            byte = f.read(1)[0]
            f.seek(offset + 8)
            f.write(bytes([byte ^ 0x40]))
        with self.assertRaises(CheckpointError) as caught:
            open_checkpoint(path)
        self.assertIn(f"checkpoint {path}: HDF5 cannot read it", str(caught.exception))

    def test_a_safetensors_export_loads_the_same_model(self):
        path = os.path.join(self.dir, "model.safetensors")
        run([CKPT_TOOL, "export", "--format=safetensors", f"--out={path}",
             FIXTURES["mha_rope"]["ckpt"]])
        exported = GPT.from_checkpoint(path, tokenizer=os.path.join(DATA, "tokenizer.model"))
        self.assert_same_model(exported, GPT.from_checkpoint(FIXTURES["mha_rope"]["ckpt"]))
        self.assertEqual(exported.step, 1)
        self.assertEqual(exported.generate_tokens([5, 6, 7], 5),
                         GPT.from_checkpoint(FIXTURES["mha_rope"]["ckpt"]).generate_tokens(
                             [5, 6, 7], 5))

    def test_a_safetensors_export_without_a_tokenizer_says_what_to_pass(self):
        path = os.path.join(self.dir, "model.safetensors")
        run([CKPT_TOOL, "export", "--format=safetensors", f"--out={path}",
             FIXTURES["mha_rope"]["ckpt"]])
        with self.assertRaisesRegex(ValueError, "pass tokenizer=PATH"):
            GPT.from_checkpoint(path).generate("Once")


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(argv=sys.argv[:1], verbosity=2)
