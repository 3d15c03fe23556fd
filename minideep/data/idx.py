"""The IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values in C order. Images are ``(N, 28, 28)`` uint8 (type 0x08,
ndim 3), labels ``(N,)`` uint8 (ndim 1).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .errors import DataFormatError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, label: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an IDX file into an array of the sizes its header gives."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _TYPES:
        raise DataFormatError(f"{label} is not an IDX file (header {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{label}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataFormatError(f"{label}: IDX header says {dims} ({expected} bytes), the file has {len(data)} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzipped (``.gz``, detected by its magic bytes) or not."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataFormatError(f"{path}: broken gzip data ({err})") from None
    return parse_idx(raw, str(path))
