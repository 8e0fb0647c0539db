"""The model configuration and parameter layout of docs/model.md.

ModelConfig holds the model fields of a checkpoint's /config group (the names of
the C++ ModelConfigToString) and checks them with the rules of
runtime/model_config.cc; parameter_layout() is the table "Parameters" of
docs/model.md: every tensor's name and shape, in buffer order. Pure Python.
"""
from dataclasses import dataclass, fields

import numpy as np

ATTENTION_KINDS = ("mha", "mha_rope", "mla", "mla_rope")


class ConfigError(ValueError):
    """A model configuration that is incomplete, mistyped or breaks a rule."""


def plain_value(value):
    """numpy scalars and 0-d arrays (what h5py returns for attributes) and bytes
    as Python values."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def require(mapping, key, where, kind):
    """mapping[key] checked to be of `kind` (int excludes bool; float accepts int)."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"{where}: missing key '{key}'")
    value = plain_value(mapping[key])
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


@dataclass(frozen=True)
class ModelConfig:
    """Letters of docs/model.md: V vocab_size, T context_length, L n_layer,
    C d_model, H n_head, R kv_rank, P rope_dim, Q q_rank (0: no query compression)."""
    vocab_size: int
    context_length: int
    n_layer: int
    d_model: int
    n_head: int
    attention: str
    kv_rank: int
    rope_dim: int
    q_rank: int
    latent_norm: bool
    mlp_ratio: int
    tied_embeddings: bool
    rope_theta: float

    @staticmethod
    def from_dict(d):
        """From a mapping holding every model field (extra keys are ignored);
        raises ConfigError naming a missing, mistyped or invalid field."""
        values = {f.name: require(d, f.name, "config", f.type) for f in fields(ModelConfig)}
        cfg = ModelConfig(**values)
        cfg.validate()
        return cfg

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def head_dim(self):
        return self.d_model // self.n_head

    @property
    def is_mla(self):
        return self.attention in ("mla", "mla_rope")

    @property
    def learned_positions(self):
        return self.attention in ("mha", "mla")

    @property
    def qk_head_dim(self):
        """Per-head width of the score q·k: D, or D + P for mla_rope."""
        return self.head_dim + (self.rope_dim if self.attention == "mla_rope" else 0)

    def validate(self):
        """The rules of ValidateModelConfig (runtime/model_config.cc)."""
        def bad(field, rule):
            raise ConfigError(f"config: {field}={getattr(self, field)}: {rule}")
        if self.attention not in ATTENTION_KINDS:
            bad("attention", f"must be one of {', '.join(ATTENTION_KINDS)}")
        if not 2 <= self.vocab_size <= 65536:
            bad("vocab_size", "must be in [2, 65536] (tokens are stored as uint16)")
        if not 1 <= self.context_length <= 65536:
            bad("context_length", "must be in [1, 65536]")
        if not 1 <= self.n_layer <= 1024:
            bad("n_layer", "must be in [1, 1024]")
        if not 1 <= self.d_model <= 65536:
            bad("d_model", "must be in [1, 65536]")
        if self.n_head < 1 or self.d_model % self.n_head:
            bad("n_head", f"must be at least 1 and divide d_model={self.d_model}")
        if not 1 <= self.mlp_ratio <= 64:
            bad("mlp_ratio", "must be in [1, 64]")
        if not self.rope_theta > 1.0:
            bad("rope_theta", "must be greater than 1")
        if self.attention == "mha_rope" and self.head_dim % 2:
            bad("n_head", f"mha_rope rotates pairs, so the head dim {self.head_dim} must be even")
        if self.is_mla:
            if not 1 <= self.kv_rank <= self.d_model:
                bad("kv_rank", f"must be in [1, d_model={self.d_model}]")
            if not 0 <= self.q_rank <= self.d_model:
                bad("q_rank", f"must be 0 (no query compression) or in [1, d_model={self.d_model}]")
        elif self.q_rank != 0:
            bad("q_rank", "query compression needs attention=mla or mla_rope")
        if self.attention == "mla_rope":
            if self.rope_dim < 2 or self.rope_dim % 2:
                bad("rope_dim", "must be even and at least 2 for mla_rope")
            if self.rope_dim > self.d_model:
                bad("rope_dim", "must not exceed d_model")
        if self.latent_norm and not self.is_mla:
            bad("latent_norm", "the latent RMSNorm needs attention=mla or mla_rope")


def parameter_layout(cfg):
    """[(name, shape)] in buffer order: the table "Parameters" of docs/model.md."""
    V, T, C, H, D = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_head, cfg.head_dim
    R, Q, P, M = cfg.kv_rank, cfg.q_rank, cfg.rope_dim, cfg.mlp_ratio * cfg.d_model
    out = [("wte.weight", (V, C))]
    if cfg.learned_positions:
        out.append(("wpe.weight", (T, C)))
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        out += [(b + "ln1.weight", (C,)), (b + "ln1.bias", (C,))]
        if not cfg.is_mla:
            out += [(b + "attn.w_qkv", (3 * C, C)), (b + "attn.b_qkv", (3 * C,))]
        else:
            if Q == 0:
                out.append((b + "attn.w_q", (H * D, C)))
            else:
                out.append((b + "attn.w_dq", (Q, C)))
                if cfg.latent_norm:
                    out.append((b + "attn.q_norm.weight", (Q,)))
                out.append((b + "attn.w_uq", (H * D, Q)))
            if cfg.attention == "mla_rope":
                out.append((b + "attn.w_qr", (H * P, C if Q == 0 else Q)))
            out.append((b + "attn.w_dkv", (R, C)))
            if cfg.latent_norm:
                out.append((b + "attn.kv_norm.weight", (R,)))
            out += [(b + "attn.w_uk", (H * D, R)), (b + "attn.w_uv", (H * D, R))]
            if cfg.attention == "mla_rope":
                out.append((b + "attn.w_kr", (P, C)))
        out += [(b + "attn.w_o", (C, H * D)), (b + "attn.b_o", (C,)),
                (b + "ln2.weight", (C,)), (b + "ln2.bias", (C,)),
                (b + "mlp.w_fc", (M, C)), (b + "mlp.b_fc", (M,)),
                (b + "mlp.w_proj", (C, M)), (b + "mlp.b_proj", (C,))]
    out += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    if not cfg.tied_embeddings:
        out.append(("lm_head.weight", (V, C)))
    return out
