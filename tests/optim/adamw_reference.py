#!/usr/bin/env python3
"""torch.optim.AdamW on a problem written by tests/optim/adamw_torch_parity_test.cc.

Usage: adamw_reference.py PROBLEM RESULT

PROBLEM (little-endian): int64 n, steps, segments; per segment int64 offset,
numel, decay; float64 beta1, beta2, eps, weight_decay; float32 lr[steps];
float32 params[n]; float32 grads[steps][n].
RESULT: float32 params[n], exp_avg[n], exp_avg_sq[n] after the steps, each
segment its own tensor; decayed segments in a group with weight_decay, the
others in a group with 0 (docs/model.md, "AdamW").
"""
import sys

import numpy as np
import torch


def main(problem_path, result_path):
    raw = open(problem_path, "rb").read()
    pos = 0

    def take(dtype, count):
        nonlocal pos
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=pos)
        pos += arr.nbytes
        return arr

    n, steps, nseg = (int(x) for x in take("<i8", 3))
    segs = take("<i8", 3 * nseg).reshape(nseg, 3)
    beta1, beta2, eps, wd = (float(x) for x in take("<f8", 4))
    lrs = [float(x) for x in take("<f4", steps)]
    params = take("<f4", n)
    grads = take("<f4", steps * n).reshape(steps, n)
    assert pos == len(raw), "problem file has trailing bytes"

    tensors = [torch.nn.Parameter(torch.tensor(params[o:o + k].copy())) for o, k, _ in segs]
    decayed = [t for t, (_, _, d) in zip(tensors, segs) if d]
    plain = [t for t, (_, _, d) in zip(tensors, segs) if not d]
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}],
        lr=lrs[0], betas=(beta1, beta2), eps=eps)
    for step in range(steps):
        for t, (o, k, _) in zip(tensors, segs):
            t.grad = torch.tensor(grads[step, o:o + k].copy())
        for group in opt.param_groups:
            group["lr"] = lrs[step]
        opt.step()

    out = np.empty(3 * n, dtype="<f4")
    for t, (o, k, _) in zip(tensors, segs):
        state = opt.state[t]
        out[o:o + k] = t.detach().numpy()
        out[n + o:n + o + k] = state["exp_avg"].numpy()
        out[2 * n + o:2 * n + o + k] = state["exp_avg_sq"].numpy()
    out.tofile(result_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
