#!/usr/bin/env python3
"""The PyTorch peer of the device check: the model mla-train trains, in the
way a PyTorch user would write it (bf16 autocast, scaled_dot_product_attention,
fused AdamW), timed eager or under torch.compile (--mode), so tokens/s stand
side by side in one run on one GPU.

Shape "paper": MLA+RoPE, 9 layers, d=512, 8 heads, T=512, latent r=256,
rotary dims 32 per head, V=4096, tied embeddings, MLP 4d with tanh GELU,
LayerNorm, micro-batch 16. "tiny" is the dry run's. The tokens are random:
only speed is measured here (the loss is reported to show it is finite).
Prints one JSON line.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

SHAPES = {
    "paper": dict(layers=9, d=512, heads=8, T=512, R=256, P=32, V=4096, B=16),
    "tiny": dict(layers=2, d=32, heads=4, T=32, R=16, P=4, V=256, B=4),
}


def attention(q, k, v, scale):
    """Causal attention: scaled_dot_product_attention where torch has it (2.x);
    older torch (the dry run's CPU machine) writes it out."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    T = q.size(-2)
    s = (q @ k.transpose(-2, -1)) * scale
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(s.float(), dim=-1).to(v.dtype) @ v


def rope(x, cos, sin):
    """Rotates adjacent pairs of the last dimension by the position's angles."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class MlaRopeBlock(nn.Module):
    def __init__(self, d, heads, R, P):
        super().__init__()
        self.h, self.dh, self.P = heads, d // heads, P
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.q_rope = nn.Linear(d, heads * P)
        self.dkv = nn.Linear(d, R)              # c_kv = W_dkv·x
        self.ukv = nn.Linear(R, 2 * d)          # [k_C | v] = [W_uk; W_uv]·c_kv
        self.k_rope = nn.Linear(d, P)           # one rotary key shared by the heads
        self.proj = nn.Linear(d, d)
        self.fc, self.fc_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.h, self.dh)
        qr = rope(self.q_rope(a).view(B, T, self.h, self.P), cos, sin)
        k, v = self.ukv(self.dkv(a)).view(B, T, 2, self.h, self.dh).unbind(2)
        kr = rope(self.k_rope(a).view(B, T, 1, self.P), cos, sin).expand(B, T, self.h, self.P)
        q = torch.cat((q, qr), -1).transpose(1, 2)
        k = torch.cat((k, kr), -1).transpose(1, 2)
        y = attention(q, k, v.transpose(1, 2), 1.0 / math.sqrt(self.dh + self.P))
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, layers, d, heads, T, R, P, V, **_):
        super().__init__()
        self.wte = nn.Embedding(V, d)
        self.blocks = nn.ModuleList(MlaRopeBlock(d, heads, R, P) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.wte.weight, std=0.02)
        inv = 1.0 / (10000.0 ** (torch.arange(0, P, 2).float() / P))
        ang = torch.outer(torch.arange(T).float(), inv)
        self.register_buffer("cos", ang.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", ang.sin()[None, :, None, :], persistent=False)

    def forward(self, idx, targets):
        x = self.wte(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied output head
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def tokens_per_s(model, opt, shape, device, steps, warmup):
    B, T, V = shape["B"], shape["T"], shape["V"]
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randint(0, V, (B, T + 1), generator=g).to(device) for _ in range(4)]

    def step(i):
        batch = batches[i % len(batches)]
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return steps * B * T / dt, warm_s, float(loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--shape", default="paper", choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps per variant")
    ap.add_argument("--mode", default="eager", choices=["eager", "compiled"],
                    help="eager, or under torch.compile (its compilation and warm-up untimed)")
    args = ap.parse_args()
    shape = SHAPES[args.shape]
    torch.manual_seed(1)
    result = {"shape": args.shape, **shape, "torch": torch.__version__, "device": args.device,
              "sdpa": hasattr(F, "scaled_dot_product_attention")}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 leftovers as mla-train's
    model = Gpt(**shape).to(args.device)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    fused = {"fused": True} if args.device == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, **fused)
    if args.mode == "compiled":
        model = torch.compile(model)
    (result["tokens_per_s"], result["warmup_s"], result["loss"]) = tokens_per_s(
        model, opt, shape, args.device, args.steps, warmup=3)
    result["mode"] = args.mode
    print(json.dumps(result))


if __name__ == "__main__":
    main()
