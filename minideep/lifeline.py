"""Worker processes that die with their parent, so a killed sweep leaves no orphans behind.

A pool worker is a separate process: when its parent (the sweep) is killed with
``kill -9``, nothing tells the worker, which trains on for hours, holding memory and writing
into the sweep's folder. ``die_with_parent`` runs first in every worker and ties it to its
parent in two ways:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment
  its parent dies (strictly, when the parent *thread* that forked it ends; the pool forks
  from the thread that submits the jobs, which waits for them);
- everywhere, a daemon thread that checks ``os.getppid()`` once a second: an orphan is
  re-parented (to init or a sub-reaper), its parent PID changes, and it exits.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _exit_now() -> None:
    """Exit at once, as the parent did: no cleanup (files are written atomically anyway)."""
    os._exit(1)


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _exit_now()


def die_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Make this process end when process ``parent_pid`` (its parent) ends.

    Args:
        parent_pid: the parent's PID, read in the parent (``os.getpid()`` there) before forking.
        interval: seconds between the watchdog's checks of ``os.getppid()``.
    """
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        _exit_now()
    threading.Thread(target=_watch, args=(parent_pid, interval), daemon=True, name="minideep-lifeline").start()
