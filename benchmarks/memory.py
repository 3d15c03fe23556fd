"""Peak memory of one training step, measured in a process of its own.

    python benchmarks/memory.py --framework minideep|torch [--blocks 5] [--steps 2]

Builds the model and the batch, notes the resident set size (RSS), resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``; where that is not allowed, the peak so far from
``getrusage`` is the baseline), runs ``--steps`` training steps, and prints one JSON line
with the growth of the peak RSS over the baseline: the memory the step itself needs
(activations, saved arrays, gradients, optimizer state, temporary buffers).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--framework", choices=["minideep", "torch"], required=True)
    parser.add_argument("--blocks", type=int, default=5, help="5: VGG38, 0: VGG08")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads of the framework measured")
    parser.add_argument("--keep-freed-memory", action="store_true", help="minideep.allocator's setting first")
    args = parser.parse_args()

    if args.keep_freed_memory:
        from minideep import allocator  # noqa: PLC0415

        allocator.keep_freed_memory()
    import models  # noqa: PLC0415 - benchmarks/models.py

    step = models.vgg_step(args.framework, args.blocks, args.threads)
    reset = _reset_peak()
    baseline = _status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(args.steps):
        step()
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "framework": args.framework, "blocks": args.blocks, "steps": args.steps, "threads": args.threads,
        "baseline_mib": baseline / 1024, "peak_mib": peak / 1024, "growth_mib": (peak - baseline) / 1024,
        "method": "VmHWM after clear_refs" if reset else "getrusage ru_maxrss",
    }))


def in_fresh_process(framework: str, threads: int, keep_freed_memory: bool = False) -> dict:
    """This script's measurement, run in a new Python process (the only way to start from a clean heap)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--framework", framework, "--threads", str(threads)]
    out = subprocess.run(cmd + ["--keep-freed-memory"] * keep_freed_memory, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
