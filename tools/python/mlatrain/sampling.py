"""Next-token sampling exactly as runtime/sampling.cc does it, so a seed gives
the tokens `mla-eval --task=generate` gives for the same logits.

greedy (temperature 0): the largest logit, the lowest id among equals;
otherwise z = logits / temperature, keep the k largest (k > 0), softmax, keep
the smallest prefix (sorted descending, ties by lower id) whose mass reaches
top_p, renormalise, and draw with u = uniform_at(seed, SAMPLING_STREAM, draw),
draw numbering the tokens of one request from 0. The float/double steps
follow the C++ code so that the same float32 logits give the same token.
NumPy only; pure functions.
"""
import math

import numpy as np

SAMPLING_STREAM = 0x53414D504C45  # "SAMPLE"
_MASK = (1 << 64) - 1


def _mix_bits(z):
    """SplitMix64's finaliser (runtime/random.h MixBits) on a 64-bit integer."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def uniform_at(seed, stream, index):
    """Uniform in (0, 1), a pure function of (seed, stream, index) (runtime/random.h)."""
    bits = _mix_bits((seed & _MASK) ^ _mix_bits((stream & _MASK) ^ _mix_bits(index & _MASK)))
    return ((bits >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def check_params(temperature, top_k, top_p):
    """ValueError unless temperature >= 0 (finite), top_k >= 0, top_p in (0, 1]."""
    if not (math.isfinite(temperature) and temperature >= 0.0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample(logits, temperature=0.0, top_k=0, top_p=1.0, seed=0, draw=0):
    """A token id from one row of float32 logits [V]."""
    check_params(temperature, top_k, top_p)
    logits = np.asarray(logits, dtype=np.float32)
    temperature, top_p = np.float32(temperature), np.float32(top_p)
    if temperature <= 0.0:
        return int(np.argmax(logits))
    ids = np.arange(logits.size)
    n = logits.size
    cut = 0 < top_k < n
    nucleus = top_p < 1.0
    if cut or nucleus:
        ids = np.lexsort((ids, -logits))  # descending logit, ascending id among equals
        if cut:
            ids = ids[:top_k]
    z = logits[ids]
    weights = np.exp((z - z.max()).astype(np.float64) * (1.0 / float(temperature)))
    total = float(np.cumsum(weights)[-1])  # summed in order, as the C++ loop does
    # The C++ keeps each weight as a float; the running sums below are doubles.
    acc = np.cumsum(weights.astype(np.float32).astype(np.float64))
    if nucleus:
        keep = min(int(np.searchsorted(acc, float(top_p) * total, side="left")) + 1, len(acc))
        ids, acc, total = ids[:keep], acc[:keep], float(acc[keep - 1])
    u = uniform_at(seed, SAMPLING_STREAM, draw) * total
    return int(ids[min(int(np.searchsorted(acc, u, side="right")), len(ids) - 1)])
