#!/usr/bin/python3
"""Plain-PyTorch GPT reference: the oracle the C++ parity tests compare against.

The model is mlatrain.torch's functional forward (tools/python/mlatrain, the one
Python definition of docs/model.md: explicit matmuls, an explicit causal mask),
run here in float64 with torch autograd for the gradients and AdamW written
from the formulas, for the four attention kinds mha, mha_rope, mla and
mla_rope, with optional query compression, optional latent RMSNorm and tied or
untied embeddings. It is written from the specification, not from any
optimised implementation, so the two can disagree only where one of them is
wrong; selftest.py checks it against closed forms and a numpy model.

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
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "python"))
from mlatrain.config import ConfigError, ModelConfig, parameter_layout, require  # noqa: E402
from mlatrain.torch import cross_entropy, forward, loss_of  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class CaseError(Exception):
    """A case directory that does not follow the protocol."""


def layout_with_offsets(cfg):
    """parameter_layout as protocol entries: name, shape, offset, numel, decay."""
    entries, offset = [], 0
    for name, shape in parameter_layout(cfg):
        numel = int(np.prod(shape))
        entries.append({"name": name, "shape": list(shape), "offset": offset,
                        "numel": numel, "decay": len(shape) == 2})
        offset += numel
    return entries


def check_layout(cfg, entries):
    """Raises CaseError unless `entries` is exactly the layout of docs/model.md."""
    if not isinstance(entries, list):
        raise CaseError("'params' must be a list")
    expected = parameter_layout(cfg)
    offset = 0
    for i, entry in enumerate(entries):
        where = f"params[{i}]"
        name = require(entry, "name", where, str)
        shape = require(entry, "shape", where, list)
        got_offset = require(entry, "offset", where, int)
        numel = require(entry, "numel", where, int)
        decay = require(entry, "decay", where, bool)
        if i >= len(expected):
            raise CaseError(f"{where} '{name}': the model has only {len(expected)} tensors")
        want_name, want_shape = expected[i][0], list(expected[i][1])
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
    cfg: ModelConfig
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
    cfg = ModelConfig.from_dict(require(case, "config", "case", dict))
    batch = require(case, "batch", "case", int)
    seq = require(case, "seq", "case", int)
    if batch < 1 or seq < 1:
        raise CaseError(f"case: batch={batch} and seq={seq} must be at least 1")
    if seq > cfg.context_length:
        raise CaseError(f"case: seq={seq} exceeds context_length={cfg.context_length}")
    dtype_name = case.get("dtype", "float64")
    if dtype_name not in DTYPES:
        raise CaseError(f"case: dtype '{dtype_name}' must be float64 or float32")
    raw = require(case, "adamw", "case", dict)
    adamw = {key: require(raw, key, "adamw", float)
             for key in ("beta1", "beta2", "eps", "weight_decay")}
    adamw["steps"] = require(raw, "steps", "adamw", int)
    lrs = require(raw, "lr", "adamw", list)
    if adamw["steps"] < 0 or len(lrs) != adamw["steps"]:
        raise CaseError(f"adamw: 'lr' has {len(lrs)} entries, 'steps' is {adamw['steps']}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lrs):
        raise CaseError("adamw: 'lr' must be a list of numbers")
    adamw["lr"] = [float(x) for x in lrs]
    entries = require(case, "params", "case", list)
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
    except (CaseError, ConfigError) as e:
        print(f"gpt_reference: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
