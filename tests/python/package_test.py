"""Tests of the mlatrain Python package that need no C++ program: the KV-cached
and absorbed forms of the model against its full forward, generation against
argmax of full forwards, the sampler against closed forms, the model module's
names against docs/model.md, metrics.jsonl reading, and `pip install
./tools/python` into a fresh virtual environment (offline: numpy, h5py, xxhash,
torch come from Debian's packages through --system-site-packages, the build
backend is Debian's setuptools).

Run: /usr/bin/python3 tests/python/package_test.py [TestClass ...] (ctest label `python`).

Tolerances: float64 forwards of the same math in another order agree to a few
hundred roundings of order-1 values (< 1e-13); 1e-10 is far below any real
mistake (a wrong position, mask or cache slot moves logits by > 1e-3).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "..", "..", "tools", "python")
sys.path.insert(0, PACKAGE_DIR)
from mlatrain import ConfigError, ModelConfig, metrics, parameter_layout  # noqa: E402
from mlatrain.sampling import sample, uniform_at  # noqa: E402
from mlatrain.torch import GPT  # noqa: E402

F64_TOL = 1e-10


def tiny(attention, **changes):
    c = {"vocab_size": 23, "context_length": 12, "n_layer": 2, "d_model": 8, "n_head": 2,
         "attention": attention, "kv_rank": 4, "rope_dim": 2, "q_rank": 0, "latent_norm": False,
         "mlp_ratio": 2, "tied_embeddings": True, "rope_theta": 10000.0}
    c.update(changes)
    return ModelConfig.from_dict(c)


VARIANTS = [
    tiny("mha"), tiny("mha_rope", tied_embeddings=False, rope_theta=20.0), tiny("mla"),
    tiny("mla", q_rank=4, latent_norm=True, tied_embeddings=False), tiny("mla_rope"),
    tiny("mla_rope", q_rank=6, latent_norm=True, rope_dim=4),
    tiny("mla_rope", q_rank=3, tied_embeddings=False, rope_theta=50.0),
]


def random_model(cfg, seed):
    """float64 parameters drawn larger than the GPT-2 initialisation (matrices
    N(0, 1/fan_in), norm weights 1 + N(0, 0.1²), biases N(0, 0.1²)) so attention
    is far from uniform."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in parameter_layout(cfg):
        if len(shape) == 2:
            tensors[name] = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), size=shape)
        elif name.endswith(".weight"):
            tensors[name] = 1.0 + rng.normal(0.0, 0.1, size=shape)
        else:
            tensors[name] = rng.normal(0.0, 0.1, size=shape)
    return GPT(cfg, {k: torch.tensor(v) for k, v in tensors.items()}, dtype=torch.float64)


def label(cfg):
    return (f"{cfg.attention} q_rank={cfg.q_rank} latent_norm={cfg.latent_norm} "
            f"tied={cfg.tied_embeddings}")


class ModuleTest(unittest.TestCase):
    def test_state_dict_names_and_shapes_are_the_checkpoint_layout(self):
        for cfg in VARIANTS:
            with self.subTest(label(cfg)):
                model = GPT(cfg)
                got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
                self.assertEqual(got, dict(parameter_layout(cfg)))

    def test_initialisation_follows_docs_model_md(self):
        cfg = tiny("mla_rope", n_layer=8, d_model=64, n_head=4, kv_rank=32, latent_norm=True)
        p = GPT(cfg).parameters_by_name()
        self.assertAlmostEqual(float(p["wte.weight"].std()), 0.02, delta=0.002)
        self.assertAlmostEqual(float(p["blocks.0.attn.w_o"].std()), 0.02 / math.sqrt(16),
                               delta=0.0005)
        self.assertTrue(torch.equal(p["blocks.3.attn.kv_norm.weight"], torch.ones(32)))
        self.assertTrue(torch.equal(p["blocks.3.mlp.b_fc"], torch.zeros(128)))

    def test_a_config_breaking_a_rule_is_refused_naming_the_field(self):
        with self.assertRaisesRegex(ConfigError, "q_rank=4: query compression needs"):
            tiny("mha", q_rank=4)
        with self.assertRaisesRegex(ConfigError, "config: missing key 'rope_theta'"):
            ModelConfig.from_dict({k: v for k, v in tiny("mha").to_dict().items()
                                   if k != "rope_theta"})


class CacheTest(unittest.TestCase):
    tokens = torch.tensor([[4, 9, 9, 0, 2, 5, 1, 22, 13, 13], [10, 3, 6, 6, 1, 0, 8, 8, 17, 2]])

    def test_cached_chunks_give_the_logits_of_the_full_forward(self):
        # Prefill 4, then 1, then 2, then 3 tokens: every cache slot and position.
        for cfg in VARIANTS:
            for absorbed in (False, True) if cfg.is_mla else (False,):
                with self.subTest(f"{label(cfg)} absorbed={absorbed}"):
                    model = random_model(cfg, seed=1)
                    with torch.no_grad():
                        full = model(self.tokens)
                        cache = model.new_cache(batch=2)
                        parts = [model(self.tokens[:, a:b], cache, absorbed)
                                 for a, b in ((0, 4), (4, 5), (5, 7), (7, 10))]
                    self.assertEqual(cache.length, 10)
                    np.testing.assert_allclose(torch.cat(parts, 1).numpy(), full.numpy(),
                                               rtol=0, atol=F64_TOL)

    def test_absorbed_attention_without_cache_equals_the_naive_form(self):
        for cfg in VARIANTS:
            if cfg.is_mla:
                with self.subTest(label(cfg)):
                    model = random_model(cfg, seed=2)
                    with torch.no_grad():
                        np.testing.assert_allclose(model(self.tokens, absorbed=True).numpy(),
                                                   model(self.tokens).numpy(), rtol=0,
                                                   atol=F64_TOL)

    def test_a_full_cache_refuses_more_tokens(self):
        model = random_model(VARIANTS[0], seed=3)
        cache = model.new_cache(max_len=5)
        with torch.no_grad():
            model(self.tokens[:1, :5], cache)
            with self.assertRaisesRegex(ValueError, "5 cached \\+ 1 new positions exceed"):
                model(self.tokens[:1, 5:6], cache)


class GenerationTest(unittest.TestCase):
    def test_greedy_generation_is_the_argmax_of_full_forwards(self):
        for cfg in VARIANTS:
            with self.subTest(label(cfg)):
                model = random_model(cfg, seed=4)
                prompt = [3, 1, 4, 1, 5]
                tokens, stop = model.generate_tokens(prompt, max_new_tokens=5, eos_id=-1)
                seq = list(prompt)
                with torch.no_grad():
                    for _ in range(5):
                        seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
                self.assertEqual(tokens, seq[len(prompt):])
                self.assertEqual(stop, "length")

    def test_generation_stops_when_the_context_is_full(self):
        model = random_model(VARIANTS[2], seed=5)
        tokens, stop = model.generate_tokens([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], eos_id=-1)
        # 10 prompt tokens in a context of 12: two more can be fed back, a third
        # is sampled from the last position.
        self.assertEqual((len(tokens), stop), (3, "context"))

    def test_bad_requests_are_refused(self):
        model = random_model(VARIANTS[0], seed=6)
        with self.assertRaisesRegex(ValueError, "empty prompt"):
            model.generate_tokens([], eos_id=-1)
        with self.assertRaisesRegex(ValueError, "leaves no room"):
            model.generate_tokens(list(range(12)), eos_id=-1)
        with self.assertRaisesRegex(ValueError, "top_p must be in"):
            model.generate_tokens([1], top_p=0.0, eos_id=-1)
        with self.assertRaisesRegex(ValueError, "has no tokenizer"):
            model.generate_tokens([1])


class SamplingTest(unittest.TestCase):
    logits = np.array([1.0, 3.0, 3.0, -2.0, 0.5, 2.5], dtype=np.float32)

    def test_greedy_takes_the_lowest_id_among_equal_maxima(self):
        self.assertEqual(sample(self.logits), 1)

    def test_top_k_one_and_a_tiny_top_p_are_greedy(self):
        for seed in range(20):
            self.assertEqual(sample(self.logits, 1.0, top_k=1, seed=seed), 1)
            self.assertEqual(sample(self.logits, 1.0, top_p=1e-6, seed=seed), 1)

    def test_frequencies_follow_the_softmax_of_logits_over_temperature(self):
        # 20000 draws: each frequency is within 5 standard deviations
        # (sqrt(p(1-p)/n) <= 0.0036) of softmax(z / 0.7).
        n, t = 20000, 0.7
        counts = np.bincount([sample(self.logits, t, seed=11, draw=i) for i in range(n)],
                             minlength=self.logits.size)
        p = np.exp(self.logits / t - (self.logits / t).max())
        p /= p.sum()
        np.testing.assert_array_less(np.abs(counts / n - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-12)

    def test_top_k_and_top_p_keep_only_the_head(self):
        # top_k=3 keeps ids 1, 2, 5; top_p=0.5 of softmax(z) keeps ids 1, 2 (mass 0.70).
        drawn = {sample(self.logits, 1.0, top_k=3, seed=3, draw=i) for i in range(400)}
        self.assertEqual(drawn, {1, 2, 5})
        drawn = {sample(self.logits, 1.0, top_p=0.5, seed=3, draw=i) for i in range(400)}
        self.assertEqual(drawn, {1, 2})

    def test_uniform_is_in_the_open_unit_interval_and_depends_on_every_input(self):
        values = [uniform_at(s, 5, i) for s in range(30) for i in range(30)]
        self.assertTrue(all(0.0 < v < 1.0 for v in values))
        self.assertAlmostEqual(float(np.mean(values)), 0.5, delta=0.03)
        self.assertEqual(len(set(values)), len(values))


class MetricsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mla-metrics-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_resumed_run_keeps_the_last_record_of_each_step(self):
        lines = [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 4.0},
                 {"step": 2, "val_loss": 4.1, "val_ppl": 60.3},
                 {"step": 2, "checkpoint": "ckpt-2.h5", "save_s": 0.1},
                 {"step": 2, "loss": 3.9}, {"step": 3, "loss": 3.5}]
        with open(os.path.join(self.dir, "metrics.jsonl"), "w") as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 4, "lo')
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = metrics.read(self.dir)
        self.assertEqual(len(rows), 6)
        self.assertIn("metrics.jsonl:7: skipped", str(caught[0].message))
        self.assertEqual([(r["step"], r["loss"]) for r in metrics.progress(rows)],
                         [(1, 5.0), (2, 3.9), (3, 3.5)])
        self.assertEqual([r["val_loss"] for r in metrics.validation(rows)], [4.1])

    def test_a_directory_without_metrics_is_an_error_naming_the_file(self):
        with self.assertRaisesRegex(metrics.MetricsError, "metrics.jsonl: no such file"):
            metrics.read(self.dir)


class PipInstallTest(unittest.TestCase):
    def test_pip_installs_the_package_into_a_fresh_environment_offline(self):
        tmp = tempfile.mkdtemp(prefix="mla-pip-test-")
        try:
            src = os.path.join(tmp, "src")
            shutil.copytree(PACKAGE_DIR, src, ignore=shutil.ignore_patterns(
                "__pycache__", "build", "*.egg-info"))
            venv = os.path.join(tmp, "venv")
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           check=True, capture_output=True)
            py = os.path.join(venv, "bin", "python")
            # Debian registers its h5py as "h5py._debian_h5py_serial", so pip would
            # fetch another h5py for the "h5py" requirement: --no-deps, and the
            # probe below shows the dependencies resolve from Debian's packages.
            pip = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                                  "--no-deps", "--disable-pip-version-check", src],
                                 capture_output=True, text=True)
            self.assertEqual(pip.returncode, 0, pip.stdout + pip.stderr)
            probe = ("import mlatrain, mlatrain.torch, mlatrain.metrics; "
                     "print(mlatrain.__file__); "
                     "print(mlatrain.torch.GPT(mlatrain.ModelConfig.from_dict(dict("
                     "vocab_size=5, context_length=4, n_layer=1, d_model=4, n_head=2, "
                     "attention='mla_rope', kv_rank=2, rope_dim=2, q_rank=0, latent_norm=False, "
                     "mlp_ratio=1, tied_embeddings=True, rope_theta=1e4)))([[1, 2]]).shape)")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            out = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=tmp,
                                 env=env)
            self.assertEqual(out.returncode, 0, out.stderr)
            where, shape = out.stdout.split("\n")[:2]
            self.assertTrue(where.startswith(venv), where)
            self.assertEqual(shape, "torch.Size([1, 2, 5])")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
