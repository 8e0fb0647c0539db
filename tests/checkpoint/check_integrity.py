"""Checks the integrity header of an mlatrain checkpoint (format version 2) as
docs/checkpoint-format.md specifies it, with Python's struct and xxhash only:
magic, fixed fields, header_check, the zero area, the file's size and the
digest recomputed over every byte after the header.
Usage: check_integrity.py CHECKPOINT.h5... ; exit status 0 when every file matches."""
import os
import struct
import sys

import xxhash

HEADER_BYTES = 4096
BLOCK_BYTES = 1 << 20


def integrity_problems(path):
    """The header check of docs/checkpoint-format.md, written from the spec."""
    problems = []
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
        (magic, version, header_bytes, file_bytes, algorithm, block_bytes, digest,
         check) = struct.unpack("<8sIIQIIQQ", header[:48])
        block_digests = b""
        while True:
            block = f.read(BLOCK_BYTES)
            if not block:
                break
            block_digests += xxhash.xxh3_64_digest(block)  # canonical form: big-endian
    if magic != b"\x89MLACKPT":
        problems.append(f"magic {magic!r}")
    if (version, header_bytes, algorithm, block_bytes) != (2, HEADER_BYTES, 1, BLOCK_BYTES):
        problems.append(f"header fields {(version, header_bytes, algorithm, block_bytes)}")
    if check != xxhash.xxh3_64_intdigest(header[:40]):
        problems.append("header_check does not match bytes [0, 40)")
    if header[48:] != bytes(HEADER_BYTES - 48):
        problems.append("bytes [48, 4096) are not zero")
    if file_bytes != os.path.getsize(path):
        problems.append(f"file_bytes {file_bytes} but the file has {os.path.getsize(path)}")
    if digest != xxhash.xxh3_64_intdigest(block_digests):
        problems.append("digest does not match the file")
    return problems


def main(paths):
    bad = 0
    for path in paths:
        for p in integrity_problems(path):
            print(f"{path}: {p}", file=sys.stderr)
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
