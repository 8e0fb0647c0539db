"""The mlatrain GPT in PyTorch: docs/model.md written out literally.

One definition serves everything in Python: the functional model below
(explicit matmuls and einsums, an explicit causal mask; parameters passed as a
mapping from the checkpoint names of docs/model.md to tensors) is what the
parity oracle tests/reference/gpt_reference.py runs in float64, and what the
nn.Module GPT runs with its own parameters, whose names are those same
checkpoint names (GPT.state_dict() keys equal /model dataset names).

Letters: B batch, T new tokens, S cached + new positions, C d_model, H heads,
D head dim, R kv latent rank, P rotary dims, V vocab.

Decoding: a KVCache holds, per layer, K and V [B, H, S, D] for the MHA kinds
and the latent c_kv [B, S, R] (normalised when latent_norm) plus, for mla_rope,
the rotated shared key k_r [B, S, P] for the MLA kinds. forward() with a cache
appends the new tokens at positions cache.length ... and attends to every
cached position. MLA attention runs either naive (K, V rebuilt from the
latents) or absorbed (q̃_h = W_uk,hᵀ q_h scores against the latents, the
latent mix o_h = Σ p_s c_s, then y_h = W_uv,h o_h), as the C++ decoder does.

Thread-compatible; CPU or any torch device.
"""
import math

import numpy as np
import torch
from torch import nn

from .checkpoint import open_checkpoint
from .config import ModelConfig, parameter_layout
from .sampling import check_params, sample
from .tokenizer import Tokenizer

LN_EPS = 1e-5
RMS_EPS = 1e-5


# ---------------------------------------------------------------- the math

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
    i = torch.arange(n // 2, dtype=torch.float64, device=z.device)
    freq = float(theta) ** (-2.0 * i / n)
    angle = positions.to(torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cos(angle).to(z.dtype), torch.sin(angle).to(z.dtype)
    even, odd = z[..., 0::2], z[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class KVCache:
    """Preallocated per-layer caches of `batch` sequences up to `max_len`
    positions (default the context). `length` positions are filled."""

    def __init__(self, cfg, batch=1, max_len=None, dtype=torch.float32, device=None):
        self.max_len = cfg.context_length if max_len is None else max_len
        if not 1 <= self.max_len <= cfg.context_length:
            raise ValueError(f"max_len {self.max_len} must be in [1, context "
                             f"{cfg.context_length}]")
        self.length = 0
        H, D, S = cfg.n_head, cfg.head_dim, self.max_len

        def buf(*shape):
            return torch.zeros(*shape, dtype=dtype, device=device)
        if cfg.attention == "mla":
            self.layers = [{"c_kv": buf(batch, S, cfg.kv_rank)} for _ in range(cfg.n_layer)]
        elif cfg.attention == "mla_rope":
            self.layers = [{"c_kv": buf(batch, S, cfg.kv_rank), "k_r": buf(batch, S, cfg.rope_dim)}
                           for _ in range(cfg.n_layer)]
        else:
            self.layers = [{"k": buf(batch, H, S, D), "v": buf(batch, H, S, D)}
                           for _ in range(cfg.n_layer)]

    def clear(self):
        self.length = 0


def _append(layer, start, **new):
    """Writes the new positions into the layer's buffers; returns [0, start+T) of each."""
    out = []
    for name, value in new.items():
        buf = layer[name]
        if buf.dim() == 4:  # [B, H, S, D]
            buf[:, :, start:start + value.shape[2]] = value
            out.append(buf[:, :, :start + value.shape[2]])
        else:  # [B, S, width]
            buf[:, start:start + value.shape[1]] = value
            out.append(buf[:, :start + value.shape[1]])
    return out


def attention(cfg, p, prefix, x, positions, layer=None, start=0, absorbed=False):
    """One attention sublayer on x [B, T, C] (already normalised) at absolute
    `positions` [T]; with `layer` (a KVCache layer) the new keys are written at
    `start` and every cached position is attended to."""
    B, T, _ = x.shape
    H, D, P, theta = cfg.n_head, cfg.head_dim, cfg.rope_dim, cfg.rope_theta

    def heads(z, width):  # [B, T, H*width] -> [B, H, T, width]
        return z.reshape(B, T, H, width).transpose(1, 2)

    latent = None
    if not cfg.is_mla:
        qkv = linear(x, p[prefix + "w_qkv"], p[prefix + "b_qkv"])
        q, k, v = (heads(part, D) for part in torch.split(qkv, cfg.d_model, dim=-1))
        if cfg.attention == "mha_rope":
            q, k = rope(q, positions, theta), rope(k, positions, theta)
        if layer is not None:
            k, v = _append(layer, start, k=k, v=v)
        scores = torch.einsum("bhtd,bhsd->bhts", q, k)
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
        rotary = cfg.attention == "mla_rope"
        q_r = rope(heads(linear(source, p[prefix + "w_qr"]), P), positions, theta) if rotary \
            else None
        k_r = rope(linear(x, p[prefix + "w_kr"]), positions, theta) if rotary else None
        if layer is not None and rotary:
            c_kv, k_r = _append(layer, start, c_kv=c_kv, k_r=k_r)
        elif layer is not None:
            (c_kv,) = _append(layer, start, c_kv=c_kv)
        S = c_kv.shape[1]
        if absorbed:
            w_uk = p[prefix + "w_uk"].reshape(H, D, cfg.kv_rank)
            scores = torch.einsum("bhtr,bsr->bhts", torch.einsum("bhtd,hdr->bhtr", q, w_uk),
                                  c_kv)
            if rotary:
                scores = scores + torch.einsum("bhtp,bsp->bhts", q_r, k_r)
            latent = c_kv
        else:
            k = linear(c_kv, p[prefix + "w_uk"]).reshape(B, S, H, D).transpose(1, 2)
            v = linear(c_kv, p[prefix + "w_uv"]).reshape(B, S, H, D).transpose(1, 2)
            if rotary:
                q = torch.cat([q, q_r], dim=-1)
                k = torch.cat([k, k_r[:, None, :, :].expand(B, H, S, P)], dim=-1)
            scores = torch.einsum("bhtd,bhsd->bhts", q, k)
    scores = scores / math.sqrt(cfg.qk_head_dim)
    key_positions = torch.arange(scores.shape[-1], device=positions.device)
    causal = key_positions[None, :] <= positions[:, None]
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    if latent is not None:
        mix = torch.einsum("bhts,bsr->bhtr", weights, latent)
        w_uv = p[prefix + "w_uv"].reshape(H, D, cfg.kv_rank)
        y = torch.einsum("bhtr,hdr->bhtd", mix, w_uv)
    else:
        y = torch.einsum("bhts,bhsd->bhtd", weights, v)
    y = y.transpose(1, 2).reshape(B, T, H * D)
    return linear(y, p[prefix + "w_o"], p[prefix + "b_o"])


def mlp(p, prefix, x):
    hidden = gelu_tanh(linear(x, p[prefix + "w_fc"], p[prefix + "b_fc"]))
    return linear(hidden, p[prefix + "w_proj"], p[prefix + "b_proj"])


def forward(cfg, p, tokens, cache=None, absorbed=False):
    """Logits [B, T, V] for int64 tokens [B, T]; p maps checkpoint names to
    tensors. With a cache, the tokens continue its sequences at position
    cache.length and are added to it."""
    T = tokens.shape[1]
    start = 0 if cache is None else cache.length
    limit = cfg.context_length if cache is None else cache.max_len
    if start + T > limit:
        raise ValueError(f"{start} cached + {T} new positions exceed the "
                         f"{'context' if cache is None else 'cache'} of {limit}")
    positions = torch.arange(start, start + T, device=tokens.device)
    x = p["wte.weight"][tokens]
    if cfg.learned_positions:
        x = x + p["wpe.weight"][positions][None, :, :]
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        layer = None if cache is None else cache.layers[i]
        x = x + attention(cfg, p, b + "attn.", layer_norm(x, p[b + "ln1.weight"],
                                                          p[b + "ln1.bias"]),
                          positions, layer, start, absorbed)
        x = x + mlp(p, b + "mlp.", layer_norm(x, p[b + "ln2.weight"], p[b + "ln2.bias"]))
    if cache is not None:
        cache.length += T
    h = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    head = p["wte.weight"] if cfg.tied_embeddings else p["lm_head.weight"]
    return linear(h, head)


def cross_entropy(logits, targets):
    """Mean over all positions of -log softmax(logits)[target]."""
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, targets[..., None]).squeeze(-1).mean()


def loss_of(cfg, p, inputs, targets):
    return cross_entropy(forward(cfg, p, inputs), targets)


def init_parameters(cfg, generator=None, dtype=torch.float32):
    """Name -> tensor with the GPT-2 initialisation of docs/model.md: matrices
    N(0, 0.02), attn.w_o and mlp.w_proj N(0, 0.02/√(2L)), biases 0, norm weights 1."""
    out = {}
    for name, shape in parameter_layout(cfg):
        if len(shape) == 2:
            std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith(("attn.w_o", "mlp.w_proj")) \
                else 0.02
            out[name] = torch.randn(shape, generator=generator, dtype=dtype) * std
        elif name.endswith(".weight"):
            out[name] = torch.ones(shape, dtype=dtype)
        else:
            out[name] = torch.zeros(shape, dtype=dtype)
    return out


# ---------------------------------------------------------------- the module

class GPT(nn.Module):
    """The model as an nn.Module whose parameter names are the checkpoint's.

    GPT(config) starts from the GPT-2 initialisation; GPT.from_checkpoint(path)
    loads a checkpoint file, a run's checkpoint directory or a safetensors
    export. forward(tokens, cache=None, absorbed=False) returns logits; loss(),
    perplexity(), generate() and generate_tokens() evaluate and decode like
    `mla-eval --task=loss|generate`.
    """

    def __init__(self, config, tensors=None, tokenizer=None, dtype=torch.float32, device=None):
        super().__init__()
        if not isinstance(config, ModelConfig):
            config = ModelConfig.from_dict(config)
        self.config = config
        self.tokenizer = tokenizer
        self.step = 0
        if tensors is None:
            tensors = init_parameters(config, dtype=dtype)
        for name, shape in parameter_layout(config):
            value = torch.as_tensor(tensors[name]).to(dtype=dtype, device=device)
            if tuple(value.shape) != shape:
                raise ValueError(f"tensor {name} has shape {list(value.shape)}, the config "
                                 f"gives {list(shape)}")
            owner = self
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            owner.register_parameter(leaf, nn.Parameter(value))

    @staticmethod
    def from_checkpoint(path, tokenizer=None, dtype=torch.float32, device=None):
        """Loads a checkpoint (see mlatrain.open_checkpoint; a version 2 file is
        verified first). The tokenizer is the checkpoint's own; `tokenizer` (a
        sentencepiece model file) is for files without one (safetensors)."""
        ckpt = open_checkpoint(path)
        if tokenizer is not None:
            tok = Tokenizer.from_file(tokenizer)
        elif ckpt.tokenizer_model is not None:
            tok = Tokenizer(ckpt.tokenizer_model)
        else:
            tok = None
        tensors = {n: torch.from_numpy(np.require(t, requirements="W"))
                   for n, t in ckpt.tensors.items()}
        model = GPT(ckpt.config, tensors, tok, dtype=dtype, device=device)
        model.step = ckpt.step
        return model

    def parameters_by_name(self):
        """Checkpoint name -> parameter."""
        return dict(self.named_parameters())

    def forward(self, tokens, cache=None, absorbed=False):
        """Logits [B, T, V] of int tokens [B, T] (see the module docstring)."""
        device = next(self.parameters()).device
        tokens = torch.as_tensor(tokens, dtype=torch.int64, device=device)
        return forward(self.config, self.parameters_by_name(), tokens, cache, absorbed)

    def new_cache(self, batch=1, max_len=None):
        w = self.wte.weight
        return KVCache(self.config, batch, max_len, dtype=w.dtype, device=w.device)

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer (a safetensors export carries none): "
                             "pass tokenizer=PATH to GPT.from_checkpoint")
        return self.tokenizer

    @torch.no_grad()
    def loss(self, tokens, seq_len=None, batch=8):
        """Mean cross-entropy (nats) over every full window of `tokens` as
        `mla-eval --task=loss` cuts them: window w predicts tokens
        [w·T + 1, w·T + T] from [w·T, w·T + T), T = seq_len (default the context,
        or the whole sequence when shorter); the tail is not covered. Each window's
        mean loss counts once."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if tokens.size < 2:
            raise ValueError("need at least two tokens")
        T = min(self.config.context_length, tokens.size - 1) if seq_len is None else seq_len
        if not 1 <= T <= self.config.context_length:
            raise ValueError(f"seq_len must be in [1, context {self.config.context_length}]")
        windows = (tokens.size - 1) // T
        if windows < 1:
            raise ValueError(f"{tokens.size} tokens hold no window of T+1 = {T + 1}")
        total = 0.0
        for first in range(0, windows, batch):
            rows = range(first, min(windows, first + batch))
            inputs = np.stack([tokens[w * T:w * T + T] for w in rows])
            targets = np.stack([tokens[w * T + 1:w * T + T + 1] for w in rows])
            logits = self.forward(inputs)
            per_window = -torch.log_softmax(logits.double(), dim=-1).gather(
                -1, torch.from_numpy(targets).to(logits.device)[..., None]).squeeze(-1).mean(-1)
            total += float(per_window.sum())
        return total / windows

    def perplexity(self, text):
        """exp(loss) of the text's tokens (one window when it fits the context)."""
        return math.exp(self.loss(self._need_tokenizer().encode(text)))

    @torch.no_grad()
    def generate_tokens(self, prompt, max_new_tokens=None, temperature=0.0, top_k=0, top_p=1.0,
                        seed=1, absorbed=True, eos_id=None):
        """Continues the token ids `prompt` with the KV cache, as mla-eval's
        decoder does: sampling of mlatrain.sampling (draw i for the i-th new
        token), stopping at EOS (not included), after max_new_tokens (default:
        the context), or when the cache is full. eos_id: default the
        tokenizer's; a model without a tokenizer needs it (-1: no EOS).
        Returns (tokens, stop) with stop "eos", "length" or "context"."""
        cfg = self.config
        prompt = [int(t) for t in prompt]
        if not prompt:
            raise ValueError("empty prompt")
        if len(prompt) >= cfg.context_length:
            raise ValueError(f"prompt of {len(prompt)} tokens leaves no room in the context of "
                             f"{cfg.context_length} tokens")
        if any(not 0 <= t < cfg.vocab_size for t in prompt):
            raise ValueError(f"a prompt token is outside the vocabulary of {cfg.vocab_size}")
        limit = cfg.context_length if max_new_tokens is None else max_new_tokens
        if limit < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {limit}")
        check_params(temperature, top_k, top_p)
        eos = self._need_tokenizer().eos_id if eos_id is None else eos_id
        cache = self.new_cache()
        logits = self.forward([prompt], cache, absorbed)[0, -1]
        out = []
        while True:
            token = sample(logits.float().cpu().numpy(), temperature, top_k, top_p, seed,
                           len(out))
            if token == eos:
                return out, "eos"
            out.append(token)
            if len(out) >= limit:
                return out, "length"
            if cache.length >= cache.max_len:
                return out, "context"
            logits = self.forward([[token]], cache, absorbed)[0, -1]

    def generate(self, prompt, max_new_tokens=None, temperature=0.0, top_k=0, top_p=1.0, seed=1,
                 absorbed=True):
        """The text generated after the string `prompt` (see generate_tokens)."""
        tok = self._need_tokenizer()
        tokens, _ = self.generate_tokens(tok.encode(prompt), max_new_tokens, temperature, top_k,
                                         top_p, seed, absorbed)
        return tok.decode(tokens)
