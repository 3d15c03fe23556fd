"""File checksums: every file is verified before it is parsed.

The official releases publish MD5 sums (CIFAR, MNIST, Fashion-MNIST, Food-101); the
bundled set records a SHA-256. Both are computed in 1 MiB chunks so a 5 GB archive never
sits in memory.
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import BinaryIO

from .errors import ChecksumError

_CHUNK = 1 << 20


def hash_stream(stream: BinaryIO, algorithm: str = "md5") -> str:
    """Hex digest of everything left in ``stream``."""
    digest = hashlib.new(algorithm)
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_hash(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of the file at ``path`` (``algorithm`` is ``"md5"`` or ``"sha256"``)."""
    with open(path, "rb") as f:
        return hash_stream(f, algorithm)


def gunzipped_hash(path: str | Path, algorithm: str = "md5") -> str | None:
    """Hex digest of the decompressed content of a ``.gz`` file, or None if it is not valid gzip."""
    try:
        with gzip.open(path, "rb") as f:
            return hash_stream(f, algorithm)
    except (OSError, EOFError):  # not gzip, or truncated: the caller reports the checksum error
        return None


def _is_gzip(path: Path) -> bool:
    """True if the file starts with the gzip magic bytes (a ``.part`` download has no ``.gz``)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def verify_file(
    path: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    payload_md5: str | None = None,
    label: str | None = None,
    advice: str = "The file is corrupt, truncated or was changed; delete it and try again.",
) -> str:
    """Check ``path`` against its published checksum; raise ``ChecksumError`` if it differs.

    A file passes if its MD5 (or SHA-256) equals the published one. For gzip files whose
    *content* has a known checksum (``payload_md5``), a file passes as well when the
    decompressed bytes match: Debian repacks the Fashion-MNIST ``.gz`` files (other gzip
    headers, so other file MD5s) with byte-identical content, and a hand-unzipped copy has
    no ``.gz`` at all.

    Args:
        path: the file to check.
        md5, sha256, payload_md5: the published checksum(s); at least one is required.
        label: what to call the file in the error message (default: its path).
        advice: the last sentence of the error message.

    Returns:
        How the file was verified, for ``Dataset.source`` (e.g. ``"md5 ok"``).
    """
    path = Path(path)
    label = label or str(path)
    if sha256 is not None:
        got = file_hash(path, "sha256")
        if got != sha256:
            raise ChecksumError(f"checksum mismatch for {label}: expected sha256 {sha256}, got {got}. {advice}")
        return "sha256 ok"
    if md5 is None and payload_md5 is None:
        raise ValueError(f"verify_file: no checksum given for {label}")
    got = file_hash(path, "md5")
    if md5 is not None and got == md5:
        return "md5 ok"
    if payload_md5 is not None:
        if got == payload_md5:  # an uncompressed copy of the official file
            return "md5 of content ok"
        if _is_gzip(path) and gunzipped_hash(path, "md5") == payload_md5:
            return "md5 of decompressed content ok"
    expected = " or ".join(
        f"{what} {value}"
        for what, value in (("md5", md5), ("md5 of the decompressed content", payload_md5))
        if value
    )
    raise ChecksumError(f"checksum mismatch for {label}: expected {expected}, got md5 {got}. {advice}")
