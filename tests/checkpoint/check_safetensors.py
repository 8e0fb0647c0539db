"""Reads a safetensors file with a reader written from the format's spec
(8-byte little-endian header length, JSON header, raw little-endian data;
no safetensors package) and checks it against the checkpoint it was exported
from, read with h5py: same tensors, shapes, float32 values and config.
Usage: check_safetensors.py EXPORT.safetensors CHECKPOINT.h5"""
import json
import struct
import sys

import h5py
import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors, end = {}, 0
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        assert e - b == 4 * int(np.prod(info["shape"])), name
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
        end = max(end, e)
    assert end == len(data), f"data section is {len(data)} bytes, tensors end at {end}"
    return n, meta, tensors


def main(st_path, h5_path):
    n, meta, tensors = read_safetensors(st_path)
    problems = []
    if n % 8:
        problems.append(f"header length {n} is not a multiple of 8")
    with h5py.File(h5_path, "r") as f:
        names = list(f["model"].keys())
        if sorted(names) != sorted(tensors):
            problems.append(f"tensor names differ: {sorted(names)} vs {sorted(tensors)}")
        for name in names:
            if name in tensors and not np.array_equal(tensors[name], f["model"][name][()]):
                problems.append(f"values of {name} differ")
        for key, value in f["config"].attrs.items():
            got = meta.get("config." + key)
            if isinstance(value, bytes):
                want_ok = got == value.decode()
            elif isinstance(value, (bool, np.bool_)):
                want_ok = got == ("true" if value else "false")
            else:
                want_ok = got is not None and float(got) == float(value)
            if not want_ok:
                problems.append(f"metadata config.{key} = {got!r}, checkpoint has {value!r}")
        if meta.get("step") != str(int(f.attrs["step"])):
            problems.append(f"metadata step {meta.get('step')!r}")
    for p in problems:
        print("safetensors check:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
