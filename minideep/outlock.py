"""One run at a time per output folder: ``--out`` checked writable, then locked.

Two chapter runs writing into one ``--out`` would each read ``results.json``, add their own
variants and write it back: the last writer wins and the other's finished variants are
lost. So a run takes an exclusive lock on ``OUT/.lock`` (``fcntl.flock``) for as long as it
runs, and a second run into that folder stops at once with an error naming the first one
(its PID, host, command and start time, which the lock file holds).

Why a lock and not a merge of the two runs' results: two runs could pick the same
(variant, seed) and train it into one checkpoint folder at once, and the figures, tables and
claims written at the end would show whichever run finished last. The runner already runs
variants side by side in one process tree (``--workers N``), which is the safe way to use
more cores.

The kernel drops a ``flock`` when its holder exits, however it exits (``kill -9``
included), so a stale lock never blocks a later run; the file itself is left in place and
reused. On NFS, Linux maps ``flock`` to ``fcntl`` byte-range locks, which NFS supports.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent runs are then not detected
    fcntl = None

LOCK_NAME = ".lock"


class OutputFolderError(OSError):
    """``--out`` cannot be used: not a folder, not writable, or in use by another run (the message says which and what to do)."""

    def __str__(self) -> str:
        return str(self.strerror)


def check_writable(out: str | Path, option: str = "--out") -> Path:
    """Create ``out`` if needed and prove it can be written (a file is created and removed), before any training.

    Raises:
        OutputFolderError: ``out`` (or a folder above it) is a file, or the folder cannot be
            created or written; the message names the path and what to do.
    """
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputFolderError(errno.ENOTDIR, f"{option} {out}: {parent} is a file, not a folder; "
                                                   f"give {option} a folder (it is created if missing)", str(parent))
    try:
        out.mkdir(parents=True, exist_ok=True)
        _probe(out)
    except OSError as error:
        raise OutputFolderError(error.errno or errno.EACCES,
                                f"{option} {out}: cannot write there ({error.strerror or error}); "
                                f"give {option} a folder you can write to", str(error.filename or out)) from None
    return out


def _probe(folder: Path) -> None:
    """Create and remove an empty file in ``folder``: the one way to know it is writable (``os.access`` ignores read-only mounts' and ACLs' fine print)."""
    probe = folder / f".write-test.{os.getpid()}"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    os.unlink(probe)


def owner_description(lock_file: Path) -> str:
    """What the lock file says about the run holding it (or that it says nothing readable)."""
    try:
        owner = json.loads(lock_file.read_text())
        return (f"pid {owner['pid']} on {owner['host']}, started {owner['started']}, "
                f"command: {owner['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name into the lock file yet"


@contextlib.contextmanager
def locked(out: str | Path, what: str = "run") -> Iterator[Path]:
    """Hold the exclusive lock of folder ``out`` for the ``with`` block (created if missing).

    Raises:
        OutputFolderError: another process holds the lock; the message names it (PID, host,
            command, start time) and says what to do.
    """
    lock_file = Path(out) / LOCK_NAME
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise OutputFolderError(error.errno or errno.EACCES, f"cannot open the lock file {lock_file} "
                                f"({error.strerror or error}); remove it if no run uses {out}, or use another --out",
                                str(lock_file)) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputFolderError(
                    errno.EBUSY,
                    f"{out} is in use by another {what} ({owner_description(lock_file)}); two runs into one folder "
                    "would overwrite each other's results. Wait for it to end (then run again with --resume to add "
                    "your variants), use another --out, or run the variants together in one run (--workers N)",
                    str(lock_file)) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                 "command": shlex.join([sys.executable, *sys.argv])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        yield lock_file
    finally:
        os.close(fd)  # closing the descriptor releases the flock
