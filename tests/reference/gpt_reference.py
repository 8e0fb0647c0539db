#!/usr/bin/python3
"""Plain-PyTorch GPT reference: the oracle the C++ parity tests compare against.

It implements docs/model.md literally (explicit matmuls, an explicit causal
mask, torch autograd for gradients, AdamW written from the formulas) for the
four attention kinds mha, mha_rope, mla and mla_rope, with optional query
compression, optional latent RMSNorm and tied or untied embeddings. It is
written from the specification, not from any optimised implementation, so the
two can disagree only where one of them is wrong.

Exchange protocol (run as `/usr/bin/python3 gpt_reference.py DIR`):

  inputs   DIR/case.json     config, batch B, seq T, dtype, adamw, params layout
           DIR/params.f32    every parameter, float32 LE, flat, layout order
           DIR/tokens.i32    int32 [B, T+1]: inputs tokens[:, :T], targets [:, 1:]
  outputs  DIR/ref_logits.f32          float32 [B, T, V]
           DIR/ref_loss.json           {"loss": mean cross-entropy}
           DIR/ref_grads.f32           float32, flat, same layout as params.f32
           DIR/ref_adamw_losses.json   {"losses": [before step 1 .. before step S,
                                                    after step S]}
           DIR/ref_params_after.f32    float32, flat, parameters after S steps

A malformed case (missing key, wrong file size, a layout that differs from the
one docs/model.md defines for the config) ends the program with one message on
stderr and exit status 2. CPU only; single-threaded use is safe, nothing is
shared between calls.
"""

import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

ATTENTION_KINDS = ("mha", "mha_rope", "mla", "mla_rope")
LN_EPS = 1e-5
RMS_EPS = 1e-5
DTYPES = {"float64": torch.float64, "float32": torch.float32}


class CaseError(Exception):
    """A case directory that does not follow the protocol."""


def _require(mapping, key, where, kind):
    if not isinstance(mapping, dict) or key not in mapping:
        raise CaseError(f"{where}: missing key '{key}'")
    value = mapping[key]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise CaseError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


@dataclass(frozen=True)
class Config:
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

    FIELDS = (("vocab_size", int), ("context_length", int), ("n_layer", int),
              ("d_model", int), ("n_head", int), ("attention", str), ("kv_rank", int),
              ("rope_dim", int), ("q_rank", int), ("latent_norm", bool),
              ("mlp_ratio", int), ("tied_embeddings", bool), ("rope_theta", float))

    @staticmethod
    def from_dict(d):
        values = {name: _require(d, name, "config", kind) for name, kind in Config.FIELDS}
        cfg = Config(**values)
        cfg.validate()
        return cfg

    def to_dict(self):
        return {name: getattr(self, name) for name, _ in Config.FIELDS}

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
        return self.head_dim + (self.rope_dim if self.attention == "mla_rope" else 0)

    def validate(self):
        def bad(msg):
            raise CaseError(f"config: {msg}")
        if self.attention not in ATTENTION_KINDS:
            bad(f"attention '{self.attention}' is not one of {', '.join(ATTENTION_KINDS)}")
        for name in ("vocab_size", "context_length", "n_layer", "d_model", "n_head",
                     "mlp_ratio"):
            if getattr(self, name) < 1:
                bad(f"{name} must be at least 1")
        if self.d_model % self.n_head:
            bad(f"n_head={self.n_head} must divide d_model={self.d_model}")
        if self.attention == "mha_rope" and self.head_dim % 2:
            bad(f"mha_rope needs an even head dim, got {self.head_dim}")
        if self.is_mla:
            if not 1 <= self.kv_rank <= self.d_model:
                bad(f"kv_rank={self.kv_rank} must be in [1, d_model]")
            if not 0 <= self.q_rank <= self.d_model:
                bad(f"q_rank={self.q_rank} must be in [0, d_model]")
        else:
            if self.q_rank != 0:
                bad("q_rank > 0 needs an mla kind")
            if self.latent_norm:
                bad("latent_norm needs an mla kind")
        if self.attention == "mla_rope" and (self.rope_dim < 2 or self.rope_dim % 2):
            bad(f"mla_rope needs an even rope_dim >= 2, got {self.rope_dim}")
        if not self.rope_theta > 1.0:
            bad("rope_theta must be greater than 1")


def expected_layout(cfg):
    """[(name, shape)] in buffer order, transcribed from the table in docs/model.md."""
    V, T, C, H, D = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_head, cfg.head_dim
    R, Q, P, M = cfg.kv_rank, cfg.q_rank, cfg.rope_dim, cfg.mlp_ratio * cfg.d_model
    out = [("wte.weight", [V, C])]
    if cfg.learned_positions:
        out.append(("wpe.weight", [T, C]))
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        out += [(b + "ln1.weight", [C]), (b + "ln1.bias", [C])]
        if not cfg.is_mla:
            out += [(b + "attn.w_qkv", [3 * C, C]), (b + "attn.b_qkv", [3 * C])]
        else:
            if Q == 0:
                out.append((b + "attn.w_q", [H * D, C]))
            else:
                out.append((b + "attn.w_dq", [Q, C]))
                if cfg.latent_norm:
                    out.append((b + "attn.q_norm.weight", [Q]))
                out.append((b + "attn.w_uq", [H * D, Q]))
            if cfg.attention == "mla_rope":
                out.append((b + "attn.w_qr", [H * P, C if Q == 0 else Q]))
            out.append((b + "attn.w_dkv", [R, C]))
            if cfg.latent_norm:
                out.append((b + "attn.kv_norm.weight", [R]))
            out += [(b + "attn.w_uk", [H * D, R]), (b + "attn.w_uv", [H * D, R])]
            if cfg.attention == "mla_rope":
                out.append((b + "attn.w_kr", [P, C]))
        out += [(b + "attn.w_o", [C, H * D]), (b + "attn.b_o", [C]),
                (b + "ln2.weight", [C]), (b + "ln2.bias", [C]),
                (b + "mlp.w_fc", [M, C]), (b + "mlp.b_fc", [M]),
                (b + "mlp.w_proj", [C, M]), (b + "mlp.b_proj", [C])]
    out += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
    if not cfg.tied_embeddings:
        out.append(("lm_head.weight", [V, C]))
    return out


def layout_with_offsets(cfg):
    """expected_layout as protocol entries: name, shape, offset, numel, decay."""
    entries, offset = [], 0
    for name, shape in expected_layout(cfg):
        numel = int(np.prod(shape))
        entries.append({"name": name, "shape": list(shape), "offset": offset,
                        "numel": numel, "decay": len(shape) == 2})
        offset += numel
    return entries


def check_layout(cfg, entries):
    """Raises CaseError unless `entries` is exactly the layout of docs/model.md."""
    if not isinstance(entries, list):
        raise CaseError("'params' must be a list")
    expected = expected_layout(cfg)
    offset = 0
    for i, entry in enumerate(entries):
        where = f"params[{i}]"
        name = _require(entry, "name", where, str)
        shape = _require(entry, "shape", where, list)
        got_offset = _require(entry, "offset", where, int)
        numel = _require(entry, "numel", where, int)
        decay = _require(entry, "decay", where, bool)
        if i >= len(expected):
            raise CaseError(f"{where} '{name}': the model has only {len(expected)} tensors")
        want_name, want_shape = expected[i]
        if name != want_name or list(shape) != want_shape:
            raise CaseError(f"{where}: layout mismatch, case has '{name}' {list(shape)}, "
                            f"the model expects '{want_name}' {want_shape}")
        if numel != int(np.prod(want_shape)):
            raise CaseError(f"{where} '{name}': numel {numel} != product of shape {want_shape}")
        if got_offset != offset:
            raise CaseError(f"{where} '{name}': offset {got_offset}, expected {offset} "
                            "(tensors are contiguous in layout order)")
        if decay != (len(want_shape) == 2):
            raise CaseError(f"{where} '{name}': decay={decay}, but weight decay applies "
                            "exactly to the rank-2 tensors")
        offset += numel
    if len(entries) != len(expected):
        raise CaseError(f"params: the case lists {len(entries)} tensors, the model has "
                        f"{len(expected)} (next expected '{expected[len(entries)][0]}')")
    return offset


# ---------------------------------------------------------------- the model

def layer_norm(x, weight, bias):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS) * weight + bias


def rms_norm(x, weight):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + RMS_EPS) * weight


def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def linear(x, weight, bias=None):
    y = torch.matmul(x, weight.transpose(0, 1))
    return y if bias is None else y + bias


def rope(z, positions, theta):
    """Rotates interleaved pairs of the last dim of z [..., T, n] by position.

    positions: int tensor [T] of absolute positions. Angles are formed in
    float64 whatever z's dtype, then the rotation runs in z's dtype.
    """
    n = z.shape[-1]
    i = torch.arange(n // 2, dtype=torch.float64)
    freq = float(theta) ** (-2.0 * i / n)
    angle = positions.to(torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cos(angle).to(z.dtype), torch.sin(angle).to(z.dtype)
    even, odd = z[..., 0::2], z[..., 1::2]
    rot_even = even * cos - odd * sin
    rot_odd = even * sin + odd * cos
    return torch.stack([rot_even, rot_odd], dim=-1).flatten(-2)


def attention(cfg, p, prefix, x):
    """One attention sublayer on x [B, T, C] (already normalised)."""
    B, T, _ = x.shape
    H, D, P = cfg.n_head, cfg.head_dim, cfg.rope_dim
    pos = torch.arange(T)

    def heads(z, width):  # [B, T, H*width] -> [B, H, T, width]
        return z.reshape(B, T, H, width).transpose(1, 2)

    if not cfg.is_mla:
        qkv = linear(x, p[prefix + "w_qkv"], p[prefix + "b_qkv"])
        q, k, v = (heads(part, D) for part in torch.split(qkv, cfg.d_model, dim=-1))
        if cfg.attention == "mha_rope":
            q, k = rope(q, pos, cfg.rope_theta), rope(k, pos, cfg.rope_theta)
    else:
        if cfg.q_rank == 0:
            source = x
            q = linear(x, p[prefix + "w_q"])
        else:
            source = linear(x, p[prefix + "w_dq"])
            if cfg.latent_norm:
                source = rms_norm(source, p[prefix + "q_norm.weight"])
            q = linear(source, p[prefix + "w_uq"])
        c_kv = linear(x, p[prefix + "w_dkv"])
        if cfg.latent_norm:
            c_kv = rms_norm(c_kv, p[prefix + "kv_norm.weight"])
        q = heads(q, D)
        k = heads(linear(c_kv, p[prefix + "w_uk"]), D)
        v = heads(linear(c_kv, p[prefix + "w_uv"]), D)
        if cfg.attention == "mla_rope":
            q_r = rope(heads(linear(source, p[prefix + "w_qr"]), P), pos, cfg.rope_theta)
            k_r = rope(linear(x, p[prefix + "w_kr"]), pos, cfg.rope_theta)  # [B, T, P]
            q = torch.cat([q, q_r], dim=-1)
            k = torch.cat([k, k_r[:, None, :, :].expand(B, H, T, P)], dim=-1)
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(cfg.qk_head_dim)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    scores = scores.masked_fill(~causal, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    y = torch.einsum("bhts,bhsd->bhtd", weights, v)
    y = y.transpose(1, 2).reshape(B, T, H * D)
    return linear(y, p[prefix + "w_o"], p[prefix + "b_o"])


def mlp(p, prefix, x):
    hidden = gelu_tanh(linear(x, p[prefix + "w_fc"], p[prefix + "b_fc"]))
    return linear(hidden, p[prefix + "w_proj"], p[prefix + "b_proj"])


def forward(cfg, p, tokens):
    """Logits [B, T, V] for int64 tokens [B, T]; p maps names to tensors."""
    T = tokens.shape[1]
    if T > cfg.context_length:
        raise CaseError(f"seq {T} exceeds context_length {cfg.context_length}")
    x = p["wte.weight"][tokens]
    if cfg.learned_positions:
        x = x + p["wpe.weight"][:T][None, :, :]
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        x = x + attention(cfg, p, b + "attn.", layer_norm(x, p[b + "ln1.weight"], p[b + "ln1.bias"]))
        x = x + mlp(p, b + "mlp.", layer_norm(x, p[b + "ln2.weight"], p[b + "ln2.bias"]))
    h = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    head = p["wte.weight"] if cfg.tied_embeddings else p["lm_head.weight"]
    return linear(h, head)


def cross_entropy(logits, targets):
    """Mean over all positions of -log softmax(logits)[target]."""
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, targets[..., None]).squeeze(-1).mean()


def loss_of(cfg, p, inputs, targets):
    return cross_entropy(forward(cfg, p, inputs), targets)


# ---------------------------------------------------------------- AdamW

class AdamW:
    """AdamW of docs/model.md (torch.optim.AdamW semantics), over param groups.

    groups: list of {"params": [leaf tensors], "weight_decay": wd}. step(lr)
    uses each tensor's .grad; the step count t starts at 1.
    """

    def __init__(self, groups, beta1, beta2, eps):
        self.groups = groups
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m = {id(q): torch.zeros_like(q) for g in groups for q in g["params"]}
        self.v = {id(q): torch.zeros_like(q) for g in groups for q in g["params"]}

    @torch.no_grad()
    def step(self, lr):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        for group in self.groups:
            wd = group["weight_decay"]
            for q in group["params"]:
                g = q.grad if q.grad is not None else torch.zeros_like(q)
                m, v = self.m[id(q)], self.v[id(q)]
                if wd != 0.0:
                    q -= lr * wd * q
                m.copy_(b1 * m + (1.0 - b1) * g)
                v.copy_(b2 * v + (1.0 - b2) * g * g)
                m_hat = m / (1.0 - b1 ** self.t)
                v_hat = v / (1.0 - b2 ** self.t)
                q -= lr * m_hat / (torch.sqrt(v_hat) + self.eps)


def param_groups(entries, p, weight_decay):
    """Two groups: decayed tensors (entry "decay") and the rest."""
    decayed = [p[e["name"]] for e in entries if e["decay"]]
    plain = [p[e["name"]] for e in entries if not e["decay"]]
    return [{"params": decayed, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def train_losses(cfg, p, entries, inputs, targets, adamw):
    """Runs adamw["steps"] AdamW steps on one batch; returns S+1 losses."""
    opt = AdamW(param_groups(entries, p, adamw["weight_decay"]),
                adamw["beta1"], adamw["beta2"], adamw["eps"])
    losses = []
    for step in range(adamw["steps"]):
        for q in p.values():
            q.grad = None
        loss = loss_of(cfg, p, inputs, targets)
        losses.append(loss.item())
        loss.backward()
        opt.step(adamw["lr"][step])
    with torch.no_grad():
        losses.append(loss_of(cfg, p, inputs, targets).item())
    return losses


# ---------------------------------------------------------------- protocol

def unflatten(flat, entries, dtype):
    """Name -> leaf tensor (requires_grad) of `dtype`, copied out of `flat`."""
    p = {}
    for e in entries:
        chunk = flat[e["offset"]:e["offset"] + e["numel"]].reshape(e["shape"])
        p[e["name"]] = torch.tensor(chunk, dtype=dtype).requires_grad_(True)
    return p


def flatten(tensors, entries, total):
    """Name -> tensor back to one float32 buffer in layout order."""
    flat = np.zeros(total, dtype="<f4")
    for e in entries:
        t = tensors[e["name"]]
        flat[e["offset"]:e["offset"] + e["numel"]] = t.detach().double().reshape(-1).numpy()
    return flat


@dataclass
class Case:
    cfg: Config
    batch: int
    seq: int
    dtype: torch.dtype
    adamw: dict
    entries: list
    total: int
    params: np.ndarray   # float32 [total]
    tokens: np.ndarray   # int64 [B, T+1]


def _read_exact(path, dtype, count, what):
    if not os.path.isfile(path):
        raise CaseError(f"{path}: missing ({what})")
    nbytes = os.path.getsize(path)
    want = count * np.dtype(dtype).itemsize
    if nbytes != want:
        raise CaseError(f"{path}: {nbytes} bytes, expected {want} ({what})")
    return np.fromfile(path, dtype=dtype)


def read_case(directory):
    path = os.path.join(directory, "case.json")
    try:
        with open(path) as f:
            case = json.load(f)
    except OSError as e:
        raise CaseError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CaseError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(case, dict):
        raise CaseError(f"{path}: the top level must be an object")
    cfg = Config.from_dict(_require(case, "config", "case", dict))
    batch = _require(case, "batch", "case", int)
    seq = _require(case, "seq", "case", int)
    if batch < 1 or seq < 1:
        raise CaseError(f"case: batch={batch} and seq={seq} must be at least 1")
    if seq > cfg.context_length:
        raise CaseError(f"case: seq={seq} exceeds context_length={cfg.context_length}")
    dtype_name = case.get("dtype", "float64")
    if dtype_name not in DTYPES:
        raise CaseError(f"case: dtype '{dtype_name}' must be float64 or float32")
    raw = _require(case, "adamw", "case", dict)
    adamw = {key: _require(raw, key, "adamw", float)
             for key in ("beta1", "beta2", "eps", "weight_decay")}
    adamw["steps"] = _require(raw, "steps", "adamw", int)
    lrs = _require(raw, "lr", "adamw", list)
    if adamw["steps"] < 0 or len(lrs) != adamw["steps"]:
        raise CaseError(f"adamw: 'lr' has {len(lrs)} entries, 'steps' is {adamw['steps']}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lrs):
        raise CaseError("adamw: 'lr' must be a list of numbers")
    adamw["lr"] = [float(x) for x in lrs]
    entries = _require(case, "params", "case", list)
    total = check_layout(cfg, entries)
    params = _read_exact(os.path.join(directory, "params.f32"), "<f4", total,
                         f"{total} float32 parameters")
    tokens = _read_exact(os.path.join(directory, "tokens.i32"), "<i4", batch * (seq + 1),
                         f"int32 [{batch}, {seq + 1}]").reshape(batch, seq + 1)
    if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
        raise CaseError(f"tokens.i32: token ids must be in [0, {cfg.vocab_size})")
    if not np.all(np.isfinite(params)):
        raise CaseError("params.f32: holds a non-finite value")
    return Case(cfg, batch, seq, DTYPES[dtype_name], adamw, entries, total, params,
                tokens.astype(np.int64))


def run_case(directory):
    """Reads the case in `directory`, writes every ref_* output there."""
    case = read_case(directory)
    tokens = torch.from_numpy(case.tokens)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    p = unflatten(case.params, case.entries, case.dtype)
    logits = forward(case.cfg, p, inputs)
    loss = cross_entropy(logits, targets)
    loss.backward()
    grads = {name: (t.grad if t.grad is not None else torch.zeros_like(t))
             for name, t in p.items()}

    p_train = unflatten(case.params, case.entries, case.dtype)
    losses = train_losses(case.cfg, p_train, case.entries, inputs, targets, case.adamw)

    def out(name):
        return os.path.join(directory, name)
    logits.detach().double().numpy().astype("<f4").tofile(out("ref_logits.f32"))
    with open(out("ref_loss.json"), "w") as f:
        json.dump({"loss": loss.item()}, f)
    flatten(grads, case.entries, case.total).tofile(out("ref_grads.f32"))
    with open(out("ref_adamw_losses.json"), "w") as f:
        json.dump({"losses": losses}, f)
    flatten(p_train, case.entries, case.total).tofile(out("ref_params_after.f32"))


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(f"usage: {os.path.basename(argv[0])} CASE_DIR\n\n"
              "Reads CASE_DIR/{case.json,params.f32,tokens.i32} and writes the "
              "reference logits, loss,\ngradients and AdamW trajectory next to them "
              "(see tests/reference/README.md).", file=sys.stderr)
        return 2
    try:
        run_case(argv[1])
    except CaseError as e:
        print(f"gpt_reference: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
