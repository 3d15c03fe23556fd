"""OpenBLAS kernel pins in the environment, and a restart without them.

Some machines set ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) for every program: older
OpenBLAS builds crashed on newer CPUs, and pinning an old kernel (say ``Haswell``, AVX2) was
the workaround. NumPy's OpenBLAS reads them once, when it loads, and a current build then runs
its matrix products on the old kernel: on the project's 2-core AMD EPYC, pinned to Haswell
they ran at about half the rate of the SkylakeX kernel the library picks itself (the
benchmarks page puts the two profiles of a VGG38 training step side by side).

Because the variables act at load time, only a fresh process can drop them: the chapter
scripts (``Experiment.main``) and ``benchmarks/run.py`` restart themselves once without them,
say so on stderr, and record what they dropped. ``--keep-openblas-env`` keeps them. Library
code never does this: ``import minideep`` changes no environment.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

#: The variables that pin OpenBLAS's kernel choice.
PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Set in the restarted process: what was dropped, as ``NAME=value`` pairs separated by commas.
DROPPED = "MINIDEEP_DROPPED_OPENBLAS_ENV"


def pinned() -> dict[str, str]:
    """The kernel pins present in this process's environment."""
    return {name: os.environ[name] for name in PINS if name in os.environ}


def dropped() -> str | None:
    """What the restart dropped (``"OPENBLAS_CORETYPE=Haswell,..."``), or None when nothing was."""
    return os.environ.get(DROPPED)


def running_as_script() -> bool:
    """True when this process is ``python FILE ...`` for the ``FILE`` in ``sys.argv[0]``.

    Not under ``python -m`` (pytest: ``__main__`` then has a module spec, and ``python
    sys.argv`` would not start it again), a notebook or ``python -c``, where replacing the
    process would end the caller, and not when a test sets ``sys.argv``.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is not None or not (path and sys.argv and sys.argv[0]):
        return False
    return os.path.realpath(path) == os.path.realpath(sys.argv[0])


def restart_without_pins(who: str, argv: Sequence[str] | None = None) -> None:
    """Replace this process by ``python argv...`` without the pins; return at once when there are none.

    Only a process that is a script run (:func:`running_as_script`) is replaced: inside pytest,
    a notebook or ``python -c`` this returns and the pins stay. ``argv`` defaults to
    ``sys.argv`` (the script and its arguments). The restarted process finds nothing to drop
    and goes on; ``DROPPED`` tells it (and its results) what was dropped.
    """
    pins = pinned()
    if not pins or not running_as_script():
        return
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    env[DROPPED] = ",".join(f"{k}={v}" for k, v in pins.items())
    print(f"{who}: restarting without {', '.join(pins)} (they pin an old OpenBLAS kernel; "
          "--keep-openblas-env keeps them)", file=sys.stderr, flush=True)
    args = list(sys.argv if argv is None else argv)
    os.execve(sys.executable, [sys.executable, *args], env)


def openblas_kernel() -> str | None:
    """The kernel NumPy's OpenBLAS runs on (``"SkylakeX"``, ``"Haswell"``...), or None if unknown."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return None
    for pool in threadpool_info():
        if pool.get("internal_api") == "openblas" and "numpy" in (pool.get("filepath") or ""):
            return pool.get("architecture")
    for pool in threadpool_info():
        if pool.get("internal_api") == "openblas":
            return pool.get("architecture")
    return None
