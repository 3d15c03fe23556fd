"""Install the MathJax 3 files that the course site serves itself (no CDN).

The site renders its math with MathJax 3 from ``docs/assets/mathjax/`` (git-ignored), so
pages work in an offline classroom. This script puts a pinned, checksum-verified copy
of the npm package ``mathjax`` there:

1. it looks for the package tarball in the user cache
   (``$MINIDEEP_CACHE`` or ``~/.cache/minideep``, file ``mathjax-<version>.tgz``);
2. otherwise it asks npm for it (``npm pack mathjax@<version>``; with ``--offline`` npm
   may only use its own local cache);
3. it checks the tarball's SHA-512 against the integrity string pinned below, keeps it
   in the user cache, and unpacks the files a browser needs (the ``tex-mml-chtml``
   component, its fonts, the TeX extensions it may autoload, the menu and accessibility
   parts, and the licence) into ``docs/assets/mathjax/``.

Run it once after installing the docs extra (it needs the npm registry the first time)::

    python scripts/fetch_mathjax.py

The site's build hook (``docs/hooks.py``) calls :func:`ensure_mathjax` with
``offline=True`` on every build, so a fresh checkout builds with no network as soon as
the tarball is cached.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
# The npm registry's dist.integrity for mathjax@3.2.2 (`npm view mathjax@3.2.2 dist.integrity`).
MATHJAX_INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "docs" / "assets" / "mathjax"
STAMP = "VERSION"
# What the browser may load, relative to the package's es5/ folder (the rest is for Node).
KEEP = (
    "tex-mml-chtml.js",
    "input/",
    "output/chtml/",
    "output/chtml.js",
    "a11y/",
    "ui/",
    "sre/",
    "adaptors/",
)


class MathJaxUnavailable(RuntimeError):
    """No verified MathJax tarball could be found (offline) or fetched."""


def cache_dir() -> Path:
    """Folder that keeps the verified tarball between checkouts."""
    return Path(os.environ.get("MINIDEEP_CACHE", Path.home() / ".cache" / "minideep"))


def is_installed(dest: Path = DEFAULT_DEST) -> bool:
    """True when ``dest`` holds this script's pinned MathJax version."""
    stamp = dest / STAMP
    main = dest / "tex-mml-chtml.js"
    return main.is_file() and stamp.is_file() and stamp.read_text().strip() == MATHJAX_VERSION


def _integrity_of(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode("ascii")


def _verified(blob: bytes, origin: str) -> bytes:
    got = _integrity_of(blob)
    if got != MATHJAX_INTEGRITY:
        raise MathJaxUnavailable(
            f"fetch_mathjax: {origin} does not match the pinned checksum of "
            f"mathjax@{MATHJAX_VERSION} (expected {MATHJAX_INTEGRITY}, got {got})"
        )
    return blob


def _from_npm(offline: bool) -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise MathJaxUnavailable("fetch_mathjax: npm is not installed (Debian: apt-get install npm)")
    cmd = [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"]
    if offline:
        cmd.append("--offline")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("mathjax-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            mode = "from npm's local cache" if offline else "from the npm registry"
            raise MathJaxUnavailable(
                f"fetch_mathjax: `{' '.join(cmd[1:])}` could not get mathjax@{MATHJAX_VERSION} "
                f"{mode}: {proc.stderr.strip()[-400:]}"
            )
        return _verified(tarballs[0].read_bytes(), "the tarball from npm")


def get_tarball(offline: bool = False) -> bytes:
    """Return the verified ``mathjax`` npm tarball, from the user cache or from npm.

    Args:
        offline: use only local copies (the user cache, then npm's own cache).

    Raises:
        MathJaxUnavailable: when no copy that matches the pinned checksum can be had.
    """
    cached = cache_dir() / f"mathjax-{MATHJAX_VERSION}.tgz"
    if cached.is_file():
        try:
            return _verified(cached.read_bytes(), str(cached))
        except MathJaxUnavailable:
            cached.unlink()  # a corrupt cache entry is refetched, never trusted
    blob = _from_npm(offline)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(blob)
    tmp.replace(cached)
    return blob


def _unpack(blob: bytes, dest: Path) -> None:
    """Unpack the browser files of the tarball into ``dest``, replacing it atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                name = member.name.removeprefix("package/")
                if name == "LICENSE":
                    target = staging / "LICENSE"
                elif name.startswith("es5/") and name[4:].startswith(KEEP):
                    target = staging / name[4:]
                else:
                    continue
                if ".." in Path(name).parts:
                    raise MathJaxUnavailable(f"fetch_mathjax: unsafe path {member.name!r} in tarball")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
        (staging / STAMP).write_text(MATHJAX_VERSION + "\n")
        old = None
        if dest.exists():
            old = dest.with_name(f".mathjax-old-{os.getpid()}")
            dest.rename(old)
        staging.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def ensure_mathjax(dest: Path = DEFAULT_DEST, offline: bool = False) -> Path:
    """Make sure ``dest`` holds the pinned MathJax; return ``dest``.

    Args:
        dest: folder the site serves MathJax from (``docs/assets/mathjax``).
        offline: never contact the registry; use the user cache or npm's cache only.

    Raises:
        MathJaxUnavailable: with the command that fixes it, when no copy can be had.
    """
    dest = Path(dest)
    if not is_installed(dest):
        _unpack(get_tarball(offline=offline), dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where to unpack (default: %(default)s)")
    parser.add_argument("--offline", action="store_true", help="use local caches only, never the registry")
    parser.add_argument("--force", action="store_true", help="unpack again even if the version is present")
    args = parser.parse_args(argv)
    if args.force and args.dest.exists():
        shutil.rmtree(args.dest)
    try:
        dest = ensure_mathjax(args.dest, offline=args.offline)
    except MathJaxUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    print(f"MathJax {MATHJAX_VERSION} ready in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
