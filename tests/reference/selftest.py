#!/usr/bin/python3
"""Self-test of the PyTorch reference: checks it against facts that do not come
from its own code — closed forms computed with numpy, exact equivalences
between attention kinds, the relative-position property of RoPE, finite
differences, torch.optim.AdamW — and runs the file protocol end to end.

Run: /usr/bin/python3 tests/reference/selftest.py   (ctest: reference_selftest)

Tolerances. float64 checks compare quantities of order 1 after at most a few
hundred roundings, so the error is below 1e-13; they use 1e-10, far under any
real mistake (a wrong sign, scale or index changes logits by >= 1e-3).
float32 outputs of a float64 computation differ from it by at most half an ulp
(2^-24 relative), and two roundings of nearly equal float64 numbers by one ulp.
"""

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpt_reference as ref  # noqa: E402  (puts tools/python on the path)
import write_case  # noqa: E402
from mlatrain.config import ModelConfig, parameter_layout  # noqa: E402
import mlatrain.torch as model  # noqa: E402

SCRIPT = os.path.join(HERE, "gpt_reference.py")
F64_TOL = 1e-10
F32_ULP = 2.0 ** -23


def tiny_config(attention, **changes):
    c = {"vocab_size": 11, "context_length": 8, "n_layer": 2, "d_model": 8, "n_head": 2,
         "attention": attention, "kv_rank": 4, "rope_dim": 2, "q_rank": 0,
         "latent_norm": False, "mlp_ratio": 2, "tied_embeddings": True,
         "rope_theta": 10000.0}
    c.update(changes)
    return c


# Every kind, plus the MLA options: query compression, latent norm, untied head.
VARIANTS = [
    tiny_config("mha"),
    tiny_config("mha_rope"),
    tiny_config("mla"),
    tiny_config("mla_rope"),
    tiny_config("mla", q_rank=4, latent_norm=True, tied_embeddings=False),
    tiny_config("mla_rope", q_rank=6, latent_norm=True, rope_dim=4),
    tiny_config("mla_rope", q_rank=3, tied_embeddings=False, rope_theta=50.0),
    tiny_config("mha_rope", tied_embeddings=False, rope_theta=20.0),
]


def label(c):
    return (f"{c['attention']} q_rank={c['q_rank']} latent_norm={c['latent_norm']} "
            f"tied={c['tied_embeddings']} P={c['rope_dim']} theta={c['rope_theta']}")


def random_numpy_params(config, seed):
    """Name -> float64 numpy array, drawn as write_case draws them."""
    cfg = ModelConfig.from_dict(config)
    entries = ref.layout_with_offsets(cfg)
    flat = write_case.random_params(entries, entries[-1]["offset"] + entries[-1]["numel"], seed)
    return cfg, {e["name"]: flat[e["offset"]:e["offset"] + e["numel"]]
                 .reshape(e["shape"]).astype(np.float64) for e in entries}


def to_torch(P, dtype=torch.float64):
    return {k: torch.tensor(v, dtype=dtype).requires_grad_(True) for k, v in P.items()}


def logits_of(cfg, P, tokens):
    with torch.no_grad():
        return model.forward(cfg, to_torch(P), torch.tensor(tokens)).numpy()


# ---------------------------------------------------------- numpy formulas

def np_ln(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def np_rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w


def np_gelu(u):
    return 0.5 * u * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (u + 0.044715 * u ** 3)))


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_rope_vec(z, t, theta):
    """RoPE of one vector at position t, pair by pair as docs/model.md writes it."""
    out = np.array(z, dtype=np.float64)
    n = len(z)
    for i in range(n // 2):
        a = t * theta ** (-2.0 * i / n)
        out[2 * i] = z[2 * i] * math.cos(a) - z[2 * i + 1] * math.sin(a)
        out[2 * i + 1] = z[2 * i] * math.sin(a) + z[2 * i + 1] * math.cos(a)
    return out


def np_forward(cfg, P, seq):
    """The model for one sequence, one head, query and key at a time (loops)."""
    T, C, H, D, Pd = len(seq), cfg.d_model, cfg.n_head, cfg.head_dim, cfg.rope_dim
    x = P["wte.weight"][seq].copy()
    if cfg.learned_positions:
        x += P["wpe.weight"][:T]
    for layer in range(cfg.n_layer):
        b = f"blocks.{layer}."
        A = lambda name: P[b + "attn." + name]  # noqa: E731
        a = np_ln(x, P[b + "ln1.weight"], P[b + "ln1.bias"])

        def qkv(h, t):
            """(query of position t, key of t, value of t) for head h."""
            sl = slice(h * D, (h + 1) * D)
            if not cfg.is_mla:
                full = A("w_qkv") @ a[t] + A("b_qkv")
                q, k, v = full[:C][sl], full[C:2 * C][sl], full[2 * C:][sl]
                if cfg.attention == "mha_rope":
                    q, k = np_rope_vec(q, t, cfg.rope_theta), np_rope_vec(k, t, cfg.rope_theta)
                return q, k, v
            if cfg.q_rank == 0:
                src = a[t]
                q = (A("w_q") @ src)[sl]
            else:
                src = A("w_dq") @ a[t]
                if cfg.latent_norm:
                    src = np_rms(src, A("q_norm.weight"))
                q = (A("w_uq") @ src)[sl]
            c = A("w_dkv") @ a[t]
            if cfg.latent_norm:
                c = np_rms(c, A("kv_norm.weight"))
            k, v = (A("w_uk") @ c)[sl], (A("w_uv") @ c)[sl]
            if cfg.attention == "mla_rope":
                q_r = (A("w_qr") @ src)[h * Pd:(h + 1) * Pd]
                q = np.concatenate([q, np_rope_vec(q_r, t, cfg.rope_theta)])
                k = np.concatenate([k, np_rope_vec(A("w_kr") @ a[t], t, cfg.rope_theta)])
            return q, k, v

        y = np.zeros((T, H * D))
        for h in range(H):
            proj = [qkv(h, t) for t in range(T)]
            for t in range(T):
                q = proj[t][0]
                s = np.array([q @ proj[u][1] for u in range(t + 1)]) / math.sqrt(len(q))
                w = np.exp(s - s.max())
                w /= w.sum()
                y[t, h * D:(h + 1) * D] = sum(w[u] * proj[u][2] for u in range(t + 1))
        x = x + y @ A("w_o").T + A("b_o")
        m = np_ln(x, P[b + "ln2.weight"], P[b + "ln2.bias"])
        x = x + np_gelu(m @ P[b + "mlp.w_fc"].T + P[b + "mlp.b_fc"]) @ P[b + "mlp.w_proj"].T \
            + P[b + "mlp.b_proj"]
    head = P["wte.weight"] if cfg.tied_embeddings else P["lm_head.weight"]
    return np_ln(x, P["ln_f.weight"], P["ln_f.bias"]) @ head.T


# ---------------------------------------------------------- closed forms

class ClosedFormTest(unittest.TestCase):
    def test_without_attention_and_mlp_inputs_logits_are_final_norm_of_embeddings_plus_biases(self):
        # Zero attention weights leave out = b_o; w_fc = 0 leaves
        # MLP = GELU(b_fc)·w_projᵀ + b_proj. Both constant over positions.
        tokens = np.array([[3, 0, 10, 3, 7], [1, 1, 2, 9, 4]])
        for config in VARIANTS:
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(config, seed=1)
                for name in P:
                    if ".attn." in name and not name.endswith("b_o"):
                        P[name][...] = 0.0
                    if name.endswith("mlp.w_fc"):
                        P[name][...] = 0.0
                x = P["wte.weight"][tokens]
                if cfg.learned_positions:
                    x = x + P["wpe.weight"][:tokens.shape[1]]
                for i in range(cfg.n_layer):
                    b = f"blocks.{i}."
                    x = x + P[b + "attn.b_o"] + np_gelu(P[b + "mlp.b_fc"]) @ \
                        P[b + "mlp.w_proj"].T + P[b + "mlp.b_proj"]
                head = P["wte.weight"] if cfg.tied_embeddings else P["lm_head.weight"]
                want = np_ln(x, P["ln_f.weight"], P["ln_f.bias"]) @ head.T
                np.testing.assert_allclose(logits_of(cfg, P, tokens), want, rtol=0, atol=F64_TOL)

    def test_zero_keys_make_each_position_average_the_values_of_its_prefix(self):
        # Zero keys give equal scores, so the causal softmax is 1/(t+1) on 0..t.
        tokens = np.array([[5, 2, 2, 8, 0, 6]])
        T = tokens.shape[1]
        for config in VARIANTS:
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(dict(config, n_layer=1), seed=2)
                C, b = cfg.d_model, "blocks.0."
                if cfg.is_mla:
                    P[b + "attn.w_uk"][...] = 0.0
                    if cfg.attention == "mla_rope":
                        P[b + "attn.w_kr"][...] = 0.0
                else:
                    P[b + "attn.w_qkv"][C:2 * C] = 0.0
                    P[b + "attn.b_qkv"][C:2 * C] = 0.0
                P[b + "mlp.w_proj"][...] = 0.0
                P[b + "mlp.b_proj"][...] = 0.0
                x0 = P["wte.weight"][tokens[0]]
                if cfg.learned_positions:
                    x0 = x0 + P["wpe.weight"][:T]
                a = np_ln(x0, P[b + "ln1.weight"], P[b + "ln1.bias"])
                if cfg.is_mla:
                    c = a @ P[b + "attn.w_dkv"].T
                    if cfg.latent_norm:
                        c = np_rms(c, P[b + "attn.kv_norm.weight"])
                    v = c @ P[b + "attn.w_uv"].T
                else:
                    v = a @ P[b + "attn.w_qkv"][2 * C:].T + P[b + "attn.b_qkv"][2 * C:]
                y = np.cumsum(v, axis=0) / np.arange(1, T + 1)[:, None]
                x1 = x0 + y @ P[b + "attn.w_o"].T + P[b + "attn.b_o"]
                head = P["wte.weight"] if cfg.tied_embeddings else P["lm_head.weight"]
                want = np_ln(x1, P["ln_f.weight"], P["ln_f.bias"]) @ head.T
                np.testing.assert_allclose(logits_of(cfg, P, tokens)[0], want, rtol=0,
                                           atol=F64_TOL)

    def test_zero_final_norm_gives_loss_log_vocab_and_closed_form_gradients(self):
        # ln_f weight and bias 0 => logits 0 => loss = log V. Then
        # dL/dlogits = (1/V - onehot)/N, h = xhat·w + b, so
        # dL/db = mean_v wte_v - mean_pos wte[target], dL/dw = mean_pos(...)·xhat,
        # and nothing upstream of ln_f receives gradient (w = 0 blocks it).
        tokens = np.array([[3, 0, 10, 3, 7, 7], [1, 1, 2, 9, 4, 0]])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        for config in VARIANTS:
            if not config["tied_embeddings"]:
                continue
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(config, seed=3)
                P["ln_f.weight"][...] = 0.0
                P["ln_f.bias"][...] = 0.0
                p = to_torch(P)
                loss = model.loss_of(cfg, p, torch.tensor(inputs), torch.tensor(targets))
                loss.backward()
                V = cfg.vocab_size
                self.assertAlmostEqual(loss.item(), math.log(V), delta=F64_TOL)
                wte = P["wte.weight"]
                dh = (wte.mean(0)[None, None, :] - wte[targets])  # [B, T, C] times N
                want_db = dh.mean((0, 1))
                np.testing.assert_allclose(p["ln_f.bias"].grad.numpy(), want_db, rtol=0,
                                           atol=F64_TOL)
                xhat = self._final_xhat(cfg, P, inputs)
                want_dw = (dh * xhat).mean((0, 1))
                np.testing.assert_allclose(p["ln_f.weight"].grad.numpy(), want_dw, rtol=0,
                                           atol=F64_TOL)
                for name, t in p.items():
                    if name.startswith("blocks.") or name == "wpe.weight":
                        self.assertEqual(float(t.grad.abs().max()), 0.0, name)
                # the tied table gets gradient only through the head, where h = 0
                self.assertEqual(float(p["wte.weight"].grad.abs().max()), 0.0)

    @staticmethod
    def _final_xhat(cfg, P, inputs):
        """The final residual stream normalised without affine, [B, T, C]: the
        numpy model's logits with ln_f = (1, 0) and an untied identity head."""
        C = cfg.d_model
        P2 = dict(P, **{"ln_f.weight": np.ones(C), "ln_f.bias": np.zeros(C),
                        "lm_head.weight": np.eye(C)})
        cfg2 = ModelConfig.from_dict(dict(cfg.to_dict(), tied_embeddings=False))
        return np.stack([np_forward(cfg2, P2, seq) for seq in inputs])


class RopeTest(unittest.TestCase):
    def rope_one(self, z, t, theta):
        with torch.no_grad():
            return model.rope(torch.tensor(z)[None, :], torch.tensor([t]), theta)[0].numpy()

    def test_rope_at_position_zero_is_identity(self):
        z = np.random.default_rng(0).normal(size=10)
        np.testing.assert_array_equal(self.rope_one(z, 0, 10000.0), z)

    def test_rope_rotates_pair_i_by_position_times_theta_power(self):
        # e_{2i} -> (cos a, sin a) and e_{2i+1} -> (-sin a, cos a) in pair i,
        # a = t·theta^(-2i/n); the other pairs stay 0.
        n, theta = 6, 100.0
        for t in (1, 3, 7):
            for i in range(n // 2):
                a = t * theta ** (-2.0 * i / n)
                e_even, e_odd = np.zeros(n), np.zeros(n)
                e_even[2 * i], e_odd[2 * i + 1] = 1.0, 1.0
                want_even, want_odd = np.zeros(n), np.zeros(n)
                want_even[2 * i:2 * i + 2] = [math.cos(a), math.sin(a)]
                want_odd[2 * i:2 * i + 2] = [-math.sin(a), math.cos(a)]
                np.testing.assert_allclose(self.rope_one(e_even, t, theta), want_even, atol=1e-15)
                np.testing.assert_allclose(self.rope_one(e_odd, t, theta), want_odd, atol=1e-15)

    def test_rope_score_depends_only_on_position_offset(self):
        rng = np.random.default_rng(1)
        for n, theta in ((2, 10000.0), (8, 10000.0), (8, 10.0)):
            q, k = rng.normal(size=n), rng.normal(size=n)
            for t, s in ((3, 1), (5, 5), (2, 6)):
                base = self.rope_one(q, t, theta) @ self.rope_one(k, s, theta)
                for shift in (1, 4, 17):
                    moved = self.rope_one(q, t + shift, theta) @ self.rope_one(k, s + shift, theta)
                    self.assertAlmostEqual(moved, base, delta=1e-12)
            # and it is not position-blind: an offset change does change it
            self.assertNotAlmostEqual(self.rope_one(q, 3, theta) @ self.rope_one(k, 1, theta),
                                      self.rope_one(q, 3, theta) @ self.rope_one(k, 2, theta),
                                      delta=1e-6)

    def test_rope_applies_per_position_along_the_time_axis(self):
        rng = np.random.default_rng(2)
        z = rng.normal(size=(2, 3, 5, 4))  # [B, H, T, n]
        with torch.no_grad():
            got = model.rope(torch.tensor(z), torch.arange(5), 30.0).numpy()
        for b in range(2):
            for h in range(3):
                for t in range(5):
                    np.testing.assert_allclose(got[b, h, t], np_rope_vec(z[b, h, t], t, 30.0),
                                               atol=1e-14)


class IndependentImplementationTest(unittest.TestCase):
    def test_logits_equal_a_per_head_per_position_numpy_model(self):
        tokens = np.array([[4, 9, 9, 0, 2, 5, 1], [10, 3, 6, 6, 1, 0, 8]])
        for config in VARIANTS:
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(config, seed=4)
                got = logits_of(cfg, P, tokens)
                for b in range(tokens.shape[0]):
                    np.testing.assert_allclose(got[b], np_forward(cfg, P, tokens[b]), rtol=0,
                                               atol=F64_TOL)

    def test_loss_is_mean_negative_log_likelihood_of_targets(self):
        tokens = np.array([[4, 9, 9, 0, 2, 5], [10, 3, 6, 6, 1, 0]])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        cfg, P = random_numpy_params(tiny_config("mla_rope"), seed=5)
        logp = np_log_softmax(np.stack([np_forward(cfg, P, s) for s in inputs]))
        want = -np.take_along_axis(logp, targets[..., None], -1).mean()
        with torch.no_grad():
            got = model.loss_of(cfg, to_torch(P), torch.tensor(inputs), torch.tensor(targets))
        self.assertAlmostEqual(got.item(), want, delta=F64_TOL)


class EquivalenceTest(unittest.TestCase):
    tokens = np.array([[4, 9, 9, 0, 2, 5, 1], [10, 3, 6, 6, 1, 0, 8]])

    def test_mla_with_identity_down_projection_equals_mha(self):
        # c_kv = x (R = C, w_dkv = I), k = x·W_kᵀ, v = x·W_vᵀ, q = x·W_qᵀ:
        # exactly mha with zero qkv biases.
        for q_rank, tied in ((0, True), (0, False), (8, True)):
            with self.subTest(q_rank=q_rank, tied=tied):
                cfg_mha, P = random_numpy_params(
                    tiny_config("mha", tied_embeddings=tied), seed=6)
                C = cfg_mha.d_model
                cfg_mla = ModelConfig.from_dict(tiny_config(
                    "mla", kv_rank=C, q_rank=q_rank, tied_embeddings=tied))
                M = {}
                for name, value in P.items():
                    if ".attn.w_qkv" in name:
                        b = name[:-len("w_qkv")]
                        if q_rank == 0:
                            M[b + "w_q"] = value[:C]
                        else:
                            M[b + "w_dq"] = np.eye(C)
                            M[b + "w_uq"] = value[:C]
                        M[b + "w_dkv"] = np.eye(C)
                        M[b + "w_uk"] = value[C:2 * C]
                        M[b + "w_uv"] = value[2 * C:]
                    elif ".attn.b_qkv" in name:
                        value[...] = 0.0
                    else:
                        M[name] = value
                self.assertEqual(sorted(M), sorted(n for n, _ in parameter_layout(cfg_mla)))
                np.testing.assert_allclose(logits_of(cfg_mla, M, self.tokens),
                                           logits_of(cfg_mha, P, self.tokens),
                                           rtol=0, atol=F64_TOL)

    def test_mla_rope_without_content_keys_equals_mha_rope_with_shared_keys(self):
        # mha_rope whose heads share one key projection W_k (D rows) and have
        # zero biases is mla_rope with P = D, w_uk = 0 (the content score
        # vanishes), w_kr = W_k, w_qr = sqrt((D+P)/D)·W_q (undoing the wider
        # score scale), w_dkv = I, w_uv = W_v.
        cfg_mha, P = random_numpy_params(tiny_config("mha_rope"), seed=7)
        C, D, H = cfg_mha.d_model, cfg_mha.head_dim, cfg_mha.n_head
        cfg_mla = ModelConfig.from_dict(tiny_config("mla_rope", kv_rank=C, rope_dim=D))
        M = {}
        for name, value in P.items():
            if ".attn.w_qkv" in name:
                b = name[:-len("w_qkv")]
                shared_k = value[C:C + D].copy()
                for h in range(H):
                    value[C + h * D:C + (h + 1) * D] = shared_k
                M[b + "w_q"] = np.random.default_rng(8).normal(size=(C, C))
                M[b + "w_qr"] = math.sqrt((D + D) / D) * value[:C]
                M[b + "w_dkv"] = np.eye(C)
                M[b + "w_uk"] = np.zeros((C, C))
                M[b + "w_uv"] = value[2 * C:]
                M[b + "w_kr"] = shared_k
            elif ".attn.b_qkv" in name:
                value[...] = 0.0
            else:
                M[name] = value
        self.assertEqual(sorted(M), sorted(n for n, _ in parameter_layout(cfg_mla)))
        np.testing.assert_allclose(logits_of(cfg_mla, M, self.tokens),
                                   logits_of(cfg_mha, P, self.tokens), rtol=0, atol=F64_TOL)

    def test_later_tokens_do_not_change_earlier_logits(self):
        for config in VARIANTS:
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(config, seed=9)
                a = self.tokens[:1].copy()
                b = a.copy()
                b[0, 4:] = (b[0, 4:] + 1) % cfg.vocab_size
                la, lb = logits_of(cfg, P, a), logits_of(cfg, P, b)
                np.testing.assert_array_equal(la[0, :4], lb[0, :4])
                self.assertGreater(np.abs(la[0, 4:] - lb[0, 4:]).max(), 1e-6)


class GradientTest(unittest.TestCase):
    def test_autograd_gradient_matches_finite_differences(self):
        # gradcheck's default tolerances (atol 1e-5, rtol 1e-3) sit far above
        # the central-difference error for eps = 1e-6 in float64 (~1e-10).
        tokens = torch.tensor([[1, 4, 0, 4], [2, 3, 3, 0]])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        for attention, extra in (("mha", {}), ("mha_rope", {}), ("mla", {}), ("mla_rope", {}),
                                 ("mla_rope", {"q_rank": 2, "latent_norm": True,
                                               "tied_embeddings": False})):
            config = dict(vocab_size=5, context_length=4, n_layer=1, d_model=4, n_head=2,
                          attention=attention, kv_rank=2, rope_dim=2, q_rank=0,
                          latent_norm=False, mlp_ratio=1, tied_embeddings=True,
                          rope_theta=10.0)
            config.update(extra)
            with self.subTest(label(config)):
                cfg, P = random_numpy_params(config, seed=10)
                names = list(P)
                leaves = tuple(torch.tensor(P[n]).requires_grad_(True) for n in names)

                def loss_fn(*tensors):
                    return model.loss_of(cfg, dict(zip(names, tensors)), inputs, targets)
                self.assertTrue(torch.autograd.gradcheck(loss_fn, leaves, eps=1e-6))


class AdamWTest(unittest.TestCase):
    def test_adamw_matches_torch_optim_adamw(self):
        rng = np.random.default_rng(11)
        shapes = [(3, 4), (4,), (2, 5), (5,)]
        decay = [True, False, True, False]
        init = [rng.normal(size=s) for s in shapes]
        lrs = [1e-2, 3e-2, 5e-3, 2e-2, 1e-3]
        grads = [[rng.normal(size=s) for s in shapes] for _ in lrs]
        beta1, beta2, eps, wd = 0.9, 0.95, 1e-8, 0.1

        ours = [torch.tensor(v).requires_grad_(True) for v in init]
        theirs = [torch.tensor(v).requires_grad_(True) for v in init]
        opt = ref.AdamW([{"params": [t for t, d in zip(ours, decay) if d], "weight_decay": wd},
                         {"params": [t for t, d in zip(ours, decay) if not d],
                          "weight_decay": 0.0}], beta1, beta2, eps)
        torch_opt = torch.optim.AdamW(
            [{"params": [t for t, d in zip(theirs, decay) if d], "weight_decay": wd},
             {"params": [t for t, d in zip(theirs, decay) if not d], "weight_decay": 0.0}],
            lr=lrs[0], betas=(beta1, beta2), eps=eps)
        for lr, g in zip(lrs, grads):
            for a, b, gi in zip(ours, theirs, g):
                a.grad, b.grad = torch.tensor(gi), torch.tensor(gi)
            opt.step(lr)
            for group in torch_opt.param_groups:
                group["lr"] = lr
            torch_opt.step()
        for a, b, v in zip(ours, theirs, init):
            self.assertGreater(float((a - torch.tensor(v)).abs().max()), 1e-4)  # it moved
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12,
                                       atol=1e-15)

    def test_training_on_the_model_matches_torch_optim_adamw(self):
        tokens = torch.tensor([[4, 9, 9, 0, 2, 5], [10, 3, 6, 6, 1, 0]])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        config = tiny_config("mla_rope", q_rank=4, latent_norm=True)
        cfg, P = random_numpy_params(config, seed=12)
        entries = ref.layout_with_offsets(cfg)
        adamw = {"lr": [1e-2, 2e-2, 5e-3], "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
                 "weight_decay": 0.1, "steps": 3}
        ours = to_torch(P)
        losses = ref.train_losses(cfg, ours, entries, inputs, targets, adamw)
        theirs = to_torch(P)
        torch_opt = torch.optim.AdamW(
            [{"params": [theirs[e["name"]] for e in entries if e["decay"]], "weight_decay": 0.1},
             {"params": [theirs[e["name"]] for e in entries if not e["decay"]],
              "weight_decay": 0.0}], lr=1.0, betas=(0.9, 0.95), eps=1e-8)
        want = []
        for lr in adamw["lr"]:
            torch_opt.zero_grad()
            loss = model.loss_of(cfg, theirs, inputs, targets)
            want.append(loss.item())
            loss.backward()
            for group in torch_opt.param_groups:
                group["lr"] = lr
            torch_opt.step()
        want.append(model.loss_of(cfg, theirs, inputs, targets).item())
        np.testing.assert_allclose(losses, want, rtol=1e-12)
        self.assertLess(losses[-1], losses[0])
        for name in P:
            np.testing.assert_allclose(ours[name].detach().numpy(), theirs[name].detach().numpy(),
                                       rtol=1e-10, atol=1e-13, err_msg=name)


# ---------------------------------------------------------- file protocol

def run_script(directory):
    """The script as the C++ tests run it: its own process."""
    return subprocess.run([sys.executable, SCRIPT, directory], capture_output=True, text=True)


def run_main(directory):
    """The script's main() in this process (no interpreter start-up): (status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = ref.main(["gpt_reference.py", directory])
    return status, err.getvalue()


# One end-to-end case per kind; the options are spread over them.
PROTOCOL_VARIANTS = [VARIANTS[0], VARIANTS[7], VARIANTS[4], VARIANTS[5]]


def read_f32(directory, name):
    return np.fromfile(os.path.join(directory, name), dtype="<f4")


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def assert_f32_of(self, got_f32, want_f64):
        # float32 roundings of the same float64 value agree; of float64
        # values equal to ~1e-13 they differ by at most one ulp.
        want = np.asarray(want_f64, dtype=np.float64).reshape(-1)
        np.testing.assert_allclose(got_f32.astype(np.float64), want, rtol=F32_ULP, atol=1e-30)

    def test_outputs_match_direct_calls(self):
        for i, config in enumerate(PROTOCOL_VARIANTS):
            with self.subTest(label(config)):
                entries, params, tokens = write_case.write_case(self.dir, config, batch=2, seq=6,
                                                                seed=20 + i)
                result = run_script(self.dir)
                self.assertEqual(result.returncode, 0, result.stderr)
                cfg = ModelConfig.from_dict(config)
                tok = torch.tensor(tokens.astype(np.int64))
                inputs, targets = tok[:, :-1], tok[:, 1:]
                p = ref.unflatten(params, entries, torch.float64)
                logits = model.forward(cfg, p, inputs)
                loss = model.cross_entropy(logits, targets)
                loss.backward()
                self.assert_f32_of(read_f32(self.dir, "ref_logits.f32"), logits.detach().numpy())
                with open(os.path.join(self.dir, "ref_loss.json")) as f:
                    self.assertAlmostEqual(json.load(f)["loss"], loss.item(), delta=1e-12)
                want_grads = np.concatenate([p[e["name"]].grad.numpy().reshape(-1)
                                             for e in entries])
                self.assert_f32_of(read_f32(self.dir, "ref_grads.f32"), want_grads)
                self.assertGreater(np.abs(want_grads).max(), 1e-3)
                p2 = ref.unflatten(params, entries, torch.float64)
                adamw = {"lr": [1e-2, 2e-2, 5e-3], "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
                         "weight_decay": 0.1, "steps": 3}
                losses = ref.train_losses(cfg, p2, entries, inputs, targets, adamw)
                with open(os.path.join(self.dir, "ref_adamw_losses.json")) as f:
                    np.testing.assert_allclose(json.load(f)["losses"], losses, rtol=1e-12)
                self.assertEqual(len(losses), 4)
                want_after = np.concatenate([p2[e["name"]].detach().numpy().reshape(-1)
                                             for e in entries])
                self.assert_f32_of(read_f32(self.dir, "ref_params_after.f32"), want_after)

    def test_float32_case_agrees_with_float64_within_float32_rounding(self):
        # Each logit comes from ~20 dependent rounding steps (2 layers of norm,
        # projections of length <= 16, softmax, residual adds), each rounding
        # 2^-24 relative and amplified at most ~5x by the normalisations, so
        # the float32 error stays below 100·2^-24·max|logit|.
        config = tiny_config("mla_rope", q_rank=4, latent_norm=True)
        results = {}
        for dtype in ("float64", "float32"):
            write_case.write_case(self.dir, config, batch=2, seq=6, seed=30, dtype=dtype)
            status, err = run_main(self.dir)
            self.assertEqual(status, 0, err)
            results[dtype] = read_f32(self.dir, "ref_logits.f32").astype(np.float64)
        scale = np.abs(results["float64"]).max()
        diff = np.abs(results["float32"] - results["float64"]).max()
        self.assertLess(diff, 100 * 2.0 ** -24 * scale)
        self.assertGreater(diff, 0.0)  # it did compute in float32

    def write_valid(self):
        return write_case.write_case(self.dir, tiny_config("mla"), batch=1, seq=4, seed=40)

    def edit_case(self, edit):
        path = os.path.join(self.dir, "case.json")
        with open(path) as f:
            case = json.load(f)
        edit(case)
        with open(path, "w") as f:
            json.dump(case, f)

    def assert_fails_with(self, text):
        status, err = run_main(self.dir)
        self.assertEqual(status, 2, err)
        self.assertIn(text, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ref_logits.f32")))

    def test_missing_config_key_is_reported(self):
        self.write_valid()
        self.edit_case(lambda c: c["config"].pop("kv_rank"))
        self.assert_fails_with("config: missing key 'kv_rank'")

    def test_refused_case_ends_the_process_with_status_2_and_one_line(self):
        self.write_valid()
        self.edit_case(lambda c: c.pop("params"))
        result = run_script(self.dir)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stderr.strip(), "gpt_reference: error: case: missing key 'params'")

    def test_missing_adamw_key_is_reported(self):
        self.write_valid()
        self.edit_case(lambda c: c["adamw"].pop("beta2"))
        self.assert_fails_with("adamw: missing key 'beta2'")

    def test_params_file_of_wrong_size_is_reported(self):
        _, params, _ = self.write_valid()
        params[:-1].tofile(os.path.join(self.dir, "params.f32"))
        self.assert_fails_with("params.f32")

    def test_swapped_tensor_names_are_a_layout_mismatch(self):
        self.write_valid()

        def swap(case):
            names = [e["name"] for e in case["params"]]
            i, j = names.index("blocks.0.attn.w_uk"), names.index("blocks.0.attn.w_uv")
            case["params"][i]["name"], case["params"][j]["name"] = names[j], names[i]
        self.edit_case(swap)
        self.assert_fails_with("layout mismatch, case has 'blocks.0.attn.w_uv'")

    def test_layout_of_another_kind_is_a_layout_mismatch(self):
        self.write_valid()
        self.edit_case(lambda c: c["config"].update(attention="mla_rope"))
        self.assert_fails_with("layout mismatch")

    def test_token_out_of_vocabulary_is_reported(self):
        _, _, tokens = self.write_valid()
        tokens[0, 2] = 11
        tokens.tofile(os.path.join(self.dir, "tokens.i32"))
        self.assert_fails_with("token ids must be in [0, 11)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
