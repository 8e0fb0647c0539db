"""Reading mlatrain checkpoints into NumPy (docs/checkpoint-format.md).

open_checkpoint(path) resolves a file or a checkpoint directory the way the C++
ResolveCheckpoint does, checks a format-version-2 file's integrity header and
digest before HDF5 parses it (the check of checkpoint/integrity.cc, with the
same messages), reads the config, the parameters and the tokenizer with h5py,
and checks every tensor against the layout that docs/model.md defines for the
stored config. Version 1 files (no integrity header; HDF5's fletcher32 sum on
every chunk, checked by HDF5 as it reads) and `mla-ckpt export
--format=safetensors` files (no digest of their own) are read too.

Every failure raises CheckpointError, whose message starts with
"checkpoint <path>: ". Thread-compatible: nothing is shared between calls.
"""
import json
import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from .config import ConfigError, ModelConfig, parameter_layout, plain_value

HEADER_BYTES = 4096
HEADER_MAGIC = b"\x89MLACKPT"
HEADER_FIELD_BYTES = 48
DIGEST_XXH3_BLOCKS = 1
DIGEST_BLOCK_BYTES = 1 << 20
FORMAT_NAME = "mlatrain-checkpoint"
FORMAT_VERSION = 2
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LATEST_FILE = "latest"
_CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)\.h5$")
# Blocks hashed per read: fewer system calls (as HashFileBlocks does).
_BLOCKS_PER_READ = 8


class CheckpointError(Exception):
    """A checkpoint that cannot be found, is damaged, or breaks the format."""


@dataclass
class Checkpoint:
    """What open_checkpoint returns.

    path: the file read. format_version: 1 or 2 (None for safetensors).
    step: the optimizer step it was saved at. config: the model's ModelConfig.
    hyperparameters: every /config attribute (model and training), as Python values.
    tensors: parameter name -> float32 ndarray of its full shape, in buffer order.
    metadata: the other root attributes (tokens_seen, world_size, created_utc, ...),
    plus file_bytes and digest (hex) from a version 2 integrity header.
    tokenizer_model: the sentencepiece model's bytes, or None when the file has none.
    """
    path: str
    format_version: object
    step: int
    config: ModelConfig
    hyperparameters: dict
    tensors: dict
    metadata: dict = field(default_factory=dict)
    tokenizer_model: object = None


def _xxhash():
    try:
        import xxhash
    except ImportError as e:
        raise ImportError("checking a checkpoint's digest needs the xxhash module "
                          "(Debian: python3-xxhash; pip: xxhash)") from e
    return xxhash


def resolve_checkpoint(spec):
    """A file is itself; a directory gives the file named by its `latest`, or its
    newest ckpt-<step>.h5 (a .tmp file is never considered)."""
    if os.path.isdir(spec):
        pointer = os.path.join(spec, LATEST_FILE)
        if os.path.exists(pointer):
            with open(pointer, "rb") as f:
                name = f.read(256).decode("utf-8", "replace").strip()
            if not _CHECKPOINT_NAME.match(name):
                raise CheckpointError(f"checkpoint {spec}: {pointer} does not name a checkpoint "
                                      f"file (expected ckpt-<step>.h5): '{name}'")
            path = os.path.join(spec, name)
            if not os.path.isfile(path):
                raise CheckpointError(f"checkpoint {spec}: {pointer} names {name}, which does "
                                      "not exist")
            return path
        steps = sorted(int(m.group(1)) for m in map(_CHECKPOINT_NAME.match, os.listdir(spec)) if m)
        if not steps:
            raise CheckpointError(f"checkpoint {spec}: no complete checkpoint (ckpt-<step>.h5) "
                                  "in the directory")
        return os.path.join(spec, f"ckpt-{steps[-1]}.h5")
    if not os.path.isfile(spec):
        raise CheckpointError(f"checkpoint {spec} does not exist")
    return spec


def _hex_bytes(b):
    return " ".join(f"{c:02x}" for c in b)


def decode_integrity_header(head):
    """(file_bytes, digest) of the header `head` (the file's first HEADER_BYTES,
    or all of a shorter file). Raises ValueError with the message of
    DecodeIntegrityHeader (checkpoint/integrity.cc)."""
    xxhash = _xxhash()
    if not head:
        raise ValueError("is empty (0 bytes)")
    if head[:8] == HDF5_SIGNATURE:
        raise ValueError("has no integrity header: it starts with the HDF5 signature, so it is "
                         "a format version 1 checkpoint or some other HDF5 file")
    if len(head) < 8 or head[:8] != HEADER_MAGIC:
        raise ValueError("not an mlatrain checkpoint, or its header is damaged: it starts with "
                         f"[{_hex_bytes(head[:8])}], not the magic [{_hex_bytes(HEADER_MAGIC)}]")
    if len(head) < HEADER_BYTES:
        raise ValueError(f"truncated: the file has {len(head)} bytes, less than the "
                         f"{HEADER_BYTES}-byte header")
    (_, version, header_bytes, file_bytes, algorithm, block_bytes, digest,
     stored_check) = struct.unpack("<8sIIQIIQQ", head[:HEADER_FIELD_BYTES])
    check = xxhash.xxh3_64_intdigest(head[:40])
    if check != stored_check:
        raise ValueError(f"header is damaged: its check says {stored_check:016x}, its bytes "
                         f"[0, 40) hash to {check:016x}")
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown format version {version} (this build reads version "
                         f"{FORMAT_VERSION})")
    if (header_bytes, algorithm, block_bytes) != (HEADER_BYTES, DIGEST_XXH3_BLOCKS,
                                                  DIGEST_BLOCK_BYTES):
        raise ValueError(f"header fields header_bytes={header_bytes} digest_algorithm="
                         f"{algorithm} digest_block_bytes={block_bytes} are not those of format "
                         f"version {FORMAT_VERSION} ({HEADER_BYTES}, {DIGEST_XXH3_BLOCKS}, "
                         f"{DIGEST_BLOCK_BYTES})")
    tail = head[HEADER_FIELD_BYTES:HEADER_BYTES]
    if tail.count(0) != len(tail):
        i = next(i for i, c in enumerate(tail) if c)
        raise ValueError(f"header is damaged: byte {HEADER_FIELD_BYTES + i} is {tail[i]:02x} "
                         "where the format has zero")
    if file_bytes < HEADER_BYTES or file_bytes >= 1 << 63:
        raise ValueError(f"header says the file has {file_bytes} bytes, which cannot hold "
                         "the header")
    return file_bytes, digest


def file_digest(f, file_bytes):
    """Digest algorithm 1 of the open binary file `f` of `file_bytes` bytes: the
    XXH3-64 of the canonical (big-endian) XXH3-64 of each 1 MiB block after the
    header."""
    xxhash = _xxhash()
    hashes = bytearray()
    f.seek(HEADER_BYTES)
    left = file_bytes - HEADER_BYTES
    while left > 0:
        chunk = f.read(min(left, _BLOCKS_PER_READ * DIGEST_BLOCK_BYTES))
        if not chunk:
            raise ValueError(f"truncated while reading: ended at byte {file_bytes - left}")
        view = memoryview(chunk)
        for at in range(0, len(chunk), DIGEST_BLOCK_BYTES):
            hashes += xxhash.xxh3_64_digest(view[at:at + DIGEST_BLOCK_BYTES])
        left -= len(chunk)
    return xxhash.xxh3_64_intdigest(bytes(hashes))


def check_integrity(path):
    """The reader's check before HDF5 (CheckFileIntegrity): header, size, digest.
    Returns (file_bytes, digest); raises CheckpointError("checkpoint <path>: ...")."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            file_bytes, digest = decode_integrity_header(f.read(HEADER_BYTES))
            if size < file_bytes:
                raise ValueError(f"truncated: the header says {file_bytes} bytes, the file has "
                                 f"{size}")
            if size > file_bytes:
                raise ValueError(f"damaged: {size - file_bytes} unexpected byte(s) after the end "
                                 f"(the header says {file_bytes} bytes, the file has {size})")
            actual = file_digest(f, file_bytes)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read: {e.strerror or e}") from e
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    if actual != digest:
        raise CheckpointError(f"checkpoint {path}: damaged: digest mismatch (the header says "
                              f"{digest:016x}, bytes [{HEADER_BYTES}, {file_bytes}) hash to "
                              f"{actual:016x})")
    return file_bytes, digest


def encode_integrity_header(file_bytes, digest):
    """The HEADER_BYTES to write at offset 0 of a file (EncodeIntegrityHeader)."""
    fields = struct.pack("<8sIIQIIQ", HEADER_MAGIC, FORMAT_VERSION, HEADER_BYTES, file_bytes,
                         DIGEST_XXH3_BLOCKS, DIGEST_BLOCK_BYTES, digest)
    check = struct.pack("<Q", _xxhash().xxh3_64_intdigest(fields))
    return fields + check + bytes(HEADER_BYTES - HEADER_FIELD_BYTES)


def seal(path):
    """Recomputes the digest of a version 2 file as it is now and rewrites its
    header (SealCheckpointFile): for tools and tests that rewrite a checkpoint
    with h5py on purpose. It makes any file pass, damaged ones included, so
    nothing on a load path calls it."""
    with open(path, "r+b") as f:
        file_bytes = os.fstat(f.fileno()).st_size
        if file_bytes < HEADER_BYTES:
            raise CheckpointError(f"checkpoint {path}: shorter than the {HEADER_BYTES}-byte header")
        digest = file_digest(f, file_bytes)
        f.seek(0)
        f.write(encode_integrity_header(file_bytes, digest))


def _model_config(path, values):
    try:
        return ModelConfig.from_dict(values)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None


def _check_tensors(path, cfg, tensors):
    """Names, order and shapes against docs/model.md's layout; every value finite."""
    expected = parameter_layout(cfg)
    names = list(tensors)
    if names != [n for n, _ in expected]:
        missing = [n for n, _ in expected if n not in tensors]
        extra = [n for n in names if n not in dict(expected)]
        raise CheckpointError(
            f"checkpoint {path}: the tensors are not the layout of its config "
            f"({cfg.attention}): missing {missing[:3]}, unexpected {extra[:3]}"
            + ("" if missing or extra else ", or in another order"))
    for name, shape in expected:
        if tensors[name].shape != shape:
            raise CheckpointError(f"checkpoint {path}: tensor {name} has shape "
                                  f"{list(tensors[name].shape)}, its config gives {list(shape)}")
        bad = int(np.size(tensors[name]) - np.count_nonzero(np.isfinite(tensors[name])))
        if bad:
            raise CheckpointError(f"checkpoint {path}: tensor {name} holds {bad} non-finite "
                                  "value(s)")


def _read_hdf5(path, version, metadata):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            root = {k: plain_value(v) for k, v in f.attrs.items()}
            if root.get("format") != FORMAT_NAME:
                raise CheckpointError(f"checkpoint {path}: root attribute format is "
                                      f"{root.get('format')!r}, not '{FORMAT_NAME}'")
            if root.get("format_version") != version:
                raise CheckpointError(f"checkpoint {path}: root attribute format_version is "
                                      f"{root.get('format_version')!r}, the file's layout is "
                                      f"version {version}")
            if "config" not in f or "model" not in f:
                raise CheckpointError(f"checkpoint {path}: missing the /config or /model group")
            hyper = {k: plain_value(v) for k, v in f["config"].attrs.items()}
            cfg = _model_config(path, hyper)
            model = f["model"]
            # Buffer order is offset order (h5py also lists a group in creation
            # order when, as the writer does, the file tracks it).
            offsets = {name: plain_value(model[name].attrs.get("offset", -1)) for name in model}
            tensors, offset = {}, 0
            for name in sorted(offsets, key=offsets.get):
                ds = model[name]
                if ds.dtype != np.float32:
                    raise CheckpointError(f"checkpoint {path}: tensor {name} is {ds.dtype}, "
                                          "not float32")
                if offsets[name] != offset:
                    raise CheckpointError(f"checkpoint {path}: tensor {name} has offset "
                                          f"{offsets[name]}, the tensors before it end at {offset}")
                tensors[name] = ds[()]
                offset += tensors[name].size
            tokenizer = bytes(f["tokenizer/model"][()]) if "tokenizer/model" in f else None
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: HDF5 cannot read it: {e}") from e
    _check_tensors(path, cfg, tensors)
    step = root.pop("step", 0)
    for key in ("format", "format_version"):
        root.pop(key, None)
    metadata.update(root)
    return Checkpoint(path, version, step, cfg, hyper, tensors, metadata, tokenizer)


def _typed(value, text):
    """A safetensors metadata string as the type of the model field `value` names."""
    if value is bool:
        if text not in ("true", "false"):
            raise ValueError(f"'{text}' is not true or false")
        return text == "true"
    return value(text)


def _read_safetensors(path):
    """A `mla-ckpt export --format=safetensors` file: u64 header length, JSON
    header (tensors and "__metadata__" strings), then little-endian data."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read: {e.strerror or e}") from e
    if len(blob) < 8:
        raise CheckpointError(f"checkpoint {path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: safetensors header is not JSON: {e}") from None
    meta = header.pop("__metadata__", {})
    hyper = {k[len("config."):]: v for k, v in meta.items() if k.startswith("config.")}
    types = ModelConfig.__annotations__
    try:
        values = {k: _typed(types[k], v) for k, v in hyper.items() if k in types}
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: safetensors metadata: {e}") from None
    cfg = _model_config(path, values)
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if info["dtype"] != "F32" or end - begin != 4 * int(np.prod(info["shape"])) \
                or end > len(data):
            raise CheckpointError(f"checkpoint {path}: tensor {name}: dtype {info['dtype']}, "
                                  f"shape {info['shape']}, bytes [{begin}, {end}) do not fit")
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
    _check_tensors(path, cfg, tensors)
    step = int(meta.get("step", 0))
    metadata = {k: v for k, v in meta.items() if not k.startswith("config.") and k != "step"}
    return Checkpoint(path, None, step, cfg, hyper, tensors, metadata, None)


def open_checkpoint(path):
    """Reads a checkpoint file or directory (see the module docstring).

    A format version 2 file is verified byte for byte (integrity header and
    digest) before HDF5 opens it; a version 1 file is checked by HDF5's
    per-chunk sums as it is read. Raises CheckpointError on any problem."""
    path = resolve_checkpoint(os.fspath(path))
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read: {e.strerror or e}") from e
    if head == HDF5_SIGNATURE:
        return _read_hdf5(path, 1, {})
    file_bytes, digest = check_integrity(path)
    return _read_hdf5(path, FORMAT_VERSION, {"file_bytes": file_bytes, "digest": f"{digest:016x}"})
