"""Reads an mlatrain checkpoint with h5py, numpy and xxhash only (no mlatrain
code) and checks what writer_roundtrip_test.cc wrote: the integrity header as
docs/checkpoint-format.md specifies it (its digest recomputed here), the values
of the formulas of test_state.h recomputed here, the config attributes, state
arrays and tokenizer bytes.
Usage: check_with_h5py.py CHECKPOINT.h5 ; exit status 0 when all match."""
import sys

import h5py
import numpy as np

from check_integrity import HEADER_BYTES, integrity_problems


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def main(path):
    problems = integrity_problems(path)

    def expect(what, got, want):
        if not np.array_equal(np.asarray(got), np.asarray(want)):
            problems.append(f"{what}: got {got!r}, want {want!r}")

    with h5py.File(path, "r") as f:
        expect("userblock", f.userblock_size, HEADER_BYTES)
        expect("format", text(f.attrs["format"]), "mlatrain-checkpoint")
        expect("format_version", int(f.attrs["format_version"]), 2)
        expect("step", int(f.attrs["step"]), 120)
        expect("tokens_seen", int(f.attrs["tokens_seen"]), 120 * 4096)
        cfg = f["config"].attrs
        expect("config d_model", int(cfg["d_model"]), 24)
        expect("config attention", text(cfg["attention"]), "mla_rope")
        expect("config tied_embeddings", bool(cfg["tied_embeddings"]), True)
        expect("config latent_norm", bool(cfg["latent_norm"]), False)
        expect("config lr", float(cfg["lr"]), 6e-4)
        expect("config keys", sorted(cfg.keys()),
               ["attention", "d_model", "latent_norm", "lr", "rope_theta", "tied_embeddings"])
        expect("tensor order", list(f["model"].keys()),
               ["wte.weight", "blocks.0.ln1.weight", "blocks.0.attn.w_dkv", "blocks.0.attn.b_o",
                "blocks.0.mlp.w_fc", "ln_f.bias"])
        adamw = f["optim/adamw"].attrs
        expect("adamw step", int(adamw["step"]), 120)
        expect("adamw beta2", float(adamw["beta2"]), 0.95)
        for group, formula in (("model", lambda i: (i % 4096) / np.float32(64) - np.float32(32)),
                               ("optim/adamw/m", lambda i: (i % 977) / np.float32(128) - np.float32(3)),
                               ("optim/adamw/v", lambda i: (i % 1013) / np.float32(256))):
            for name, dset in f[group].items():
                if dset.dtype != np.float32:
                    problems.append(f"{group}/{name}: dtype {dset.dtype}")
                offset = int(dset.attrs["offset"])
                idx = np.arange(offset, offset + dset.size, dtype=np.int64).reshape(dset.shape)
                want = formula(idx).astype(np.float32)
                expect(f"{group}/{name}", dset[()], want)
        expect("state schedule", f["state/schedule"][()], [120, 100, 2000])
        expect("state rng", f["state/rng"][()], [1234567890123, -5, 0, 42])
        expect("state empty", f["state/empty"].shape, (0,))
        want_tok = bytes(((i * 7 + 3) % 256) for i in range(3000))
        expect("tokenizer", f["tokenizer/model"][()].tobytes(), want_tok)
        w_fc = f["model/blocks.0.mlp.w_fc"]
        if w_fc.chunks is not None or w_fc.fletcher32 or w_fc.compression:
            problems.append("tensor datasets are not contiguous and unfiltered")
    for p in problems:
        print("h5py check:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
