"""Temporary files for atomic writes that a crash never leaves behind for good.

An atomic write goes to a temporary file beside its target and is renamed over it when
complete. ``try/finally`` removes the temporary file on every exit Python sees, but a
``kill -9``, a SIGBUS or a power cut skip it. So each temporary name carries its writer,
``.<name>.<pid>@<host>.<random><suffix>``, and the next writer in that folder removes the
files whose writer has died (same host, process gone); files of live writers, and of
other hosts that share the folder, are left alone.

Files are created with mode ``0o666`` and the process's umask applies (0644 under the
usual umask 022), the mode ``open()`` gives any other file; ``tempfile.mkstemp`` would make
them 0600.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

# Dots would make the name ambiguous to parse, so the host keeps letters, digits and '-'.
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"

_OWNER = re.compile(r"\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]{8}(?P<suffix>\.[a-z]+)$")


def temp_name(path: str | Path, suffix: str = ".tmp") -> Path:
    """The temporary name for writing ``path``: hidden, in its folder, naming this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}@{HOST}.{secrets.token_hex(4)}{suffix}")


def create_temp(path: str | Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new temporary file for ``path`` (``O_EXCL``, mode 0666 less the umask).

    Returns:
        ``(fd, temp_path)``: an open descriptor for writing and the file's name.
    """
    while True:
        tmp = temp_name(path, suffix)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # 2**32 random names per process: practically never
            continue


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to another user
        return True
    return True


def writer_of(path: str | Path) -> tuple[int, str] | None:
    """``(pid, host)`` of a temporary file named by ``temp_name``; None for any other name."""
    match = _OWNER.search(Path(path).name)
    return (int(match["pid"]), match["host"]) if match else None


def remove_stale(folder: str | Path, pattern: str = ".*.tmp") -> list[Path]:
    """Delete the temporary files in ``folder`` (matching ``pattern``) whose writer has died.

    Only names made by ``temp_name`` are considered, and only those written on this host by
    a process that no longer exists; a PID reused by an unrelated process keeps its file
    until that process ends too (safe, just later).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(pattern):
        owner = writer_of(path)
        if owner is None or owner[1] != HOST or pid_alive(owner[0]) or not path.is_file():
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        removed.append(path)
    return removed
