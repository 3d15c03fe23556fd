"""Results files: atomic writes (JSON, NPZ, any bytes), reading them back, plain-text tables, two runs compared.

A leaf module: it imports nothing of minideep's but ``tempfiles`` (a leaf too), so the chapter runner (``experiment``),
the sweeps (``sweep``), the figures (``plots``) and the checkpoints (``checkpoint``) all
write their files through it without importing each other.

Every write goes to a temporary file in the target's folder, named after the writing process
(``tempfiles``: the next write removes those of writers killed mid-write), is flushed to disk,
has the file mode an ordinary ``open()`` would give it (0666 minus the umask, usually 0644: a
site server or a colleague can read it; ``mkstemp`` alone makes 0600 files), and is then renamed
over the target with :func:`os.replace`, which is atomic on POSIX file systems: a reader
sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .tempfiles import create_temp, remove_stale

PathLike = str | Path


class WriteError(OSError):
    """A results, table, figure or checkpoint file could not be written; the message names it and says what to do.

    The earlier version of the file, if any, is still whole (the write went to a temporary file).
    ``filename`` is the file and ``errno`` the system's error number (``errno.ENOSPC``: the disk is full).
    """

    def __str__(self) -> str:
        return f"{self.strerror} [errno {self.errno}]"


def _advice(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full: free some space there, or write to another disk"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable: fix its permissions, or write elsewhere"
    return "fix the cause, or write elsewhere"


def write_atomic(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file with ``write(handle)`` so that a reader never sees half of it.

    Args:
        path: the target; its folder is created if needed.
        write: called once with a binary file handle open on the temporary file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Left by a writer of this file that was killed mid-write (its name says which process).
        remove_stale(path.parent, f".{glob.escape(path.name)}.*.tmp")
        fd, tmp = create_temp(path)  # 0666 less the umask, named after this process
    except OSError as error:
        raise WriteError(error.errno, f"cannot write {path}: {error.strerror or error} ({_advice(error)})", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            # A full disk surfaces deep in a zipfile or a flush, naming no file: name it here.
            raise WriteError(error.errno, f"cannot write {path}: {error.strerror or error} ({_advice(error)}); "
                                          "the earlier version of it, if any, is whole", str(path)) from None
        raise
    return path


def json_default(value: Any) -> Any:
    """NumPy scalars and arrays as plain JSON numbers and lists, paths as strings."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"results: cannot write a {type(value).__name__} to JSON")


def write_json_atomic(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (NumPy values included, NaN allowed) to ``path`` atomically."""
    text = json.dumps(obj, indent=1, default=json_default, allow_nan=True)
    return write_atomic(path, lambda handle: handle.write(text.encode()))


def write_npz_atomic(path: PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` archive (``numpy.savez``) to ``path`` atomically."""
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def read_results(path: PathLike) -> dict:
    """Read a results JSON file, with a clear error for a corrupt one."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); move it away to start the run afresh") from None


def jsonable(value: Any, what: str) -> Any:
    """``value`` through a JSON round trip (NumPy scalars become numbers), or a TypeError naming ``what``."""
    try:
        return json.loads(json.dumps(value, default=json_default, allow_nan=True))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must hold JSON values only: {e}") from None


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of ``rows`` (dicts), one column per key; floats with four significant digits."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in body]
    return "\n".join(lines)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   align: Mapping[str, str] | None = None) -> str:
    """A Markdown (pipe) table of ``rows`` for the site: one column per key, floats with four significant digits.

    ``align`` maps a column to ``"left"`` or ``"right"`` (numbers default to right). A ``|``
    inside a cell is escaped, so a cell never splits into two columns.
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    align = dict(align or {})

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    def rule(column: str) -> str:
        numeric = all(isinstance(r.get(column), (int, float)) and not isinstance(r.get(column), bool)
                      for r in rows if r.get(column) is not None)
        side = align.get(column, "right" if numeric else "left")
        return "---:" if side == "right" else "---"

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(rule(c) for c in columns) + " |"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


#: The verdicts a claims ledger allows: an honest ledger, not a list of successes.
VERDICTS = ("reproduced", "differs", "not run")
CLAIM_FIELDS = ("claim", "source", "paper", "ours", "verdict", "evidence")


def check_claims_ledger(claims: Sequence[Mapping[str, Any]], owner: str = "claims") -> list[dict[str, Any]]:
    """The ledger's entries as plain dicts, after checking each has every field and a known verdict."""
    checked = []
    for k, entry in enumerate(claims):
        missing = [f for f in CLAIM_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"{owner}: claim {k} ({entry.get('claim')!r}) lacks {missing}")
        if entry["verdict"] not in VERDICTS:
            raise ValueError(f"{owner}: claim {k} ({entry['claim']!r}) has verdict {entry['verdict']!r}; "
                             f"use one of {VERDICTS}")
        checked.append({f: entry[f] for f in CLAIM_FIELDS} | {k2: v for k2, v in entry.items() if k2 not in CLAIM_FIELDS})
    return checked


def claims_markdown(claims: Sequence[Mapping[str, Any]]) -> str:
    """The claims ledger as the Markdown table a chapter page shows near its top."""
    rows = [{"claim": c["claim"], "source": c["source"], "paper": c["paper"], "ours": c["ours"],
             "verdict": f"**{c['verdict']}**", "evidence": c["evidence"]} for c in claims]
    return markdown_table(rows, CLAIM_FIELDS, align={f: "left" for f in CLAIM_FIELDS})


# ----------------------------------------------------------------------------------------
# Comparing two runs
# ----------------------------------------------------------------------------------------

#: Keys that hold the machine's timings or state, not a result of the run (besides every ``*_s``):
#: an epoch's time, the load average, a data file's path, chapter 01's timed backward/forward cost.
NOT_RESULTS = {"time", "load_average", "source", "backward_cost"}
#: Relative difference up to which two runs' values are called equal (float64 summation noise).
EQUAL_WITHIN = 1e-9


def _is_timing(key: str) -> bool:
    return key in NOT_RESULTS or key.endswith("_s")


def result_values(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every number or string in a run's record, timings skipped."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_timing(str(key)):
                yield from result_values(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from result_values(item, f"{path}[{i}]")
    else:
        yield path, value


def relative_difference(a: Any, b: Any) -> float:
    """0 for equal values, |a - b| / max(|a|, |b|) for numbers, inf for values that differ in kind."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return 0.0 if a == b else math.inf
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def compare_runs(first: Mapping[str, Any], second: Mapping[str, Any], tolerance: float = EQUAL_WITHIN) -> dict[str, Any]:
    """Two results.json dicts' common (variant, seed) runs, compared value by value (timings skipped).

    Returns ``runs`` (the "variant/seed" both hold), ``compared`` (how many values), ``differences``
    ((relative difference, key, first's value, second's value), largest first; a key only one run
    has counts as an infinite difference), ``beyond`` (those over ``tolerance``) and ``largest``.
    ``scripts/compare_runs.py`` is its command.
    """
    runs, differences, compared = [], [], 0
    for variant, entry in first.get("variants", {}).items():
        other = second.get("variants", {}).get(variant)
        for seed, run in entry.get("runs", {}).items():
            if other is None or seed not in other.get("runs", {}):
                continue
            runs.append(f"{variant}/{seed}")
            a, b = dict(result_values(run)), dict(result_values(other["runs"][seed]))
            for key in sorted(a.keys() | b.keys()):
                compared += 1
                d = relative_difference(a.get(key), b.get(key)) if key in a and key in b else math.inf
                if d:
                    differences.append((d, f"{variant}/{seed}{key}", a.get(key), b.get(key)))
    differences.sort(key=lambda item: -item[0])
    return {"runs": runs, "compared": compared, "differences": differences,
            "beyond": [d for d in differences if d[0] > tolerance], "largest": differences[0][0] if differences else 0.0}
