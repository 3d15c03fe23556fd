"""Real faults: a kill -9 mid-write, a full disk, a dying parent. Nothing is lost or left behind for good."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minideep import tempfiles
from minideep.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def python(code: str, **kwargs) -> subprocess.Popen:
    """Start ``python -c code`` with this checkout's minideep first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", code], env=env, **kwargs)


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail (not hang) after ``seconds``. Not a timing threshold."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


# ------------------------------------------------------------------------------------------
# Temporary files of killed writers
# ------------------------------------------------------------------------------------------


def test_temp_files_name_their_writer_and_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        fd, tmp = tempfiles.create_temp(tmp_path / "last.npz")
        os.close(fd)
    finally:
        os.umask(old)
    assert tmp.name.startswith(".last.npz.") and tmp.suffix == ".tmp"
    assert tempfiles.writer_of(tmp) == (os.getpid(), tempfiles.HOST)
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o644


def test_remove_stale_keeps_live_writers_other_hosts_and_other_files(tmp_path):
    mine = tempfiles.temp_name(tmp_path / "last.npz")
    dead = tmp_path / f".last.npz.{dead_pid()}@{tempfiles.HOST}.0123abcd.tmp"
    other_host = tmp_path / f".last.npz.{dead_pid()}@some-other-host.0123abcd.tmp"
    unrelated = tmp_path / ".last.npz.notes.tmp"
    for path in (mine, dead, other_host, unrelated):
        path.write_bytes(b"x")
    assert tempfiles.remove_stale(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, other_host, unrelated))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoints_get_the_mode_of_any_new_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "last.npz", {"w": np.zeros(3)})
        figure_like = tmp_path / "figure.png"
        figure_like.write_bytes(b"png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(figure_like.stat().st_mode) == 0o666 & ~umask


_WRITER = """
import numpy as np
from minideep.checkpoint import save_checkpoint
big = {"model": {"w": np.ones(16_000_000)}}  # 128 MB: each save takes a while to write
while True:
    save_checkpoint(PATH, big)
"""


@pytest.mark.slow
def test_kill_9_mid_checkpoint_write_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    path = tmp_path / "ckpt" / "last.npz"
    save_checkpoint(path, {"model": {"w": np.arange(3.0)}, "epoch": 1})
    writer = python(_WRITER.replace("PATH", repr(str(path))), stderr=subprocess.PIPE)
    try:
        # A temporary file that has grown: the writer is in the middle of a save.
        temps = lambda: [p for p in path.parent.glob(".last.npz.*.tmp") if p.stat().st_size > 1 << 20]  # noqa: E731
        wait_for(lambda: writer.poll() is not None or temps(), "the writer to start a save")
        assert writer.poll() is None, writer.stderr.read().decode()
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    left = list(path.parent.glob(".last.npz.*.tmp"))
    assert left and tempfiles.writer_of(left[0]) == (writer.pid, tempfiles.HOST)
    # The last complete checkpoint is whole (the first one, or a complete big one).
    assert load_checkpoint(path)["model"]["w"].shape in ((3,), (16_000_000,))
    save_checkpoint(path, {"model": {"w": np.arange(4.0)}, "epoch": 2})
    assert list(path.parent.glob(".*.tmp")) == []
    assert load_checkpoint(path)["epoch"] == 2
