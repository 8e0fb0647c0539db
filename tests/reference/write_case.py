#!/usr/bin/python3
"""Writes a random case directory for gpt_reference.py (no C++ needed).

The case follows the protocol of tests/reference/README.md: case.json with the
layout docs/model.md defines for the config, random parameters drawn from a
seed, random tokens. Parameters are drawn larger than the GPT-2 initialisation
(matrices N(0, 1/fan_in), norm weights 1 + N(0, 0.1²), biases N(0, 0.1²)) so
that attention is far from uniform and every term of the model matters.

    /usr/bin/python3 write_case.py DIR --attention mla_rope --q-rank 4 --latent-norm
    /usr/bin/python3 gpt_reference.py DIR
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference as ref  # noqa: E402  (puts tools/python on the path)
from mlatrain.config import ATTENTION_KINDS, ConfigError, ModelConfig  # noqa: E402


def random_params(entries, total, seed):
    """float32 [total]: every tensor drawn from a generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    flat = np.empty(total, dtype="<f4")
    for e in entries:
        shape, name = e["shape"], e["name"]
        if len(shape) == 2:
            values = rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)
        elif name.endswith(".weight"):  # LayerNorm / RMSNorm gains
            values = 1.0 + rng.normal(0.0, 0.1, size=shape)
        else:
            values = rng.normal(0.0, 0.1, size=shape)
        flat[e["offset"]:e["offset"] + e["numel"]] = values.reshape(-1)
    return flat


def write_case(directory, config, batch, seq, seed=0, dtype="float64", lr=None,
               beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, params=None, tokens=None):
    """Writes case.json, params.f32 and tokens.i32 into `directory`.

    config: dict with the fields of mlatrain.config.ModelConfig. lr: per-step learning
    rates (default three steps). params / tokens override the random draws.
    Returns (entries, params float32 [total], tokens int32 [batch, seq+1]).
    """
    cfg = ModelConfig.from_dict(config)
    entries = ref.layout_with_offsets(cfg)
    total = sum(e["numel"] for e in entries)
    rng = np.random.default_rng(seed + 1)
    if params is None:
        params = random_params(entries, total, seed)
    if tokens is None:
        tokens = rng.integers(0, cfg.vocab_size, size=(batch, seq + 1))
    lr = [1e-2, 2e-2, 5e-3] if lr is None else list(lr)
    os.makedirs(directory, exist_ok=True)
    case = {"config": cfg.to_dict(), "batch": batch, "seq": seq, "dtype": dtype,
            "adamw": {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps,
                      "weight_decay": weight_decay, "steps": len(lr)},
            "params": entries}
    with open(os.path.join(directory, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    params = np.asarray(params, dtype="<f4")
    tokens = np.asarray(tokens, dtype="<i4")
    params.tofile(os.path.join(directory, "params.f32"))
    tokens.tofile(os.path.join(directory, "tokens.i32"))
    return entries, params, tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", help="case directory to create or overwrite")
    ap.add_argument("--attention", default="mla_rope", choices=ATTENTION_KINDS)
    ap.add_argument("--vocab-size", type=int, default=11)
    ap.add_argument("--context-length", type=int, default=8)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=8)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--kv-rank", type=int, default=4)
    ap.add_argument("--rope-dim", type=int, default=2)
    ap.add_argument("--q-rank", type=int, default=0, help="0 = no query compression")
    ap.add_argument("--latent-norm", action="store_true", help="RMSNorm on the latents")
    ap.add_argument("--mlp-ratio", type=int, default=2)
    ap.add_argument("--untied", action="store_true", help="separate lm_head.weight")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=5)
    ap.add_argument("--dtype", default="float64", choices=sorted(ref.DTYPES))
    ap.add_argument("--lr", type=float, nargs="*", default=[1e-2, 2e-2, 5e-3],
                    help="learning rate of each AdamW step (their count is the steps)")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    config = {"vocab_size": a.vocab_size, "context_length": a.context_length,
              "n_layer": a.n_layer, "d_model": a.d_model, "n_head": a.n_head,
              "attention": a.attention, "kv_rank": a.kv_rank, "rope_dim": a.rope_dim,
              "q_rank": a.q_rank, "latent_norm": a.latent_norm, "mlp_ratio": a.mlp_ratio,
              "tied_embeddings": not a.untied, "rope_theta": a.rope_theta}
    try:
        write_case(a.directory, config, a.batch, a.seq, seed=a.seed, dtype=a.dtype,
                   lr=a.lr, weight_decay=a.weight_decay)
    except (ref.CaseError, ConfigError) as e:
        print(f"write_case: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
