"""minideep against PyTorch on this machine: speed of the hot ops, training steps, memory.

    python benchmarks/run.py                 # the full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick         # fewer rounds, smaller loader epoch (2-3 minutes)
    python benchmarks/run.py --only conv     # items whose name contains "conv"
    python benchmarks/run.py --device gpu    # CuPy against PyTorch CUDA (see gpu_check.sh)

Both frameworks run in this one process, interleaved, after a warm-up; each figure is the
median over rounds (see harness.py). The table gives minideep's time, PyTorch's, and the
ratio minideep / PyTorch against the issue's targets; the same goes to
``benchmarks/results/<device>[-quick].json`` and ``.md``. Peak memory is measured in a fresh
process per framework (memory.py).

OpenBLAS: some machines set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE to pin an old CPU kernel
(older OpenBLAS builds crashed on newer CPUs). That slows NumPy's matrix products by up to
4x on a current build, so this script restarts itself once without the two variables (its
own process only; the results record which kernel ran). ``--keep-openblas-env`` keeps them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7, loader on 10,000 images")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--only", default="", help="run only the items whose name contains this text")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and markdown table")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per item (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for both frameworks (PyTorch's set_num_threads, minideep's backend.set_num_threads); "
                             "1 compares one core with one core, which other processes disturb least")
    parser.add_argument("--keep-openblas-env", action="store_true", help="do not drop OPENBLAS_CORETYPE/L2_SIZE")
    return parser.parse_args()


def _restart_without_openblas_pins(args: argparse.Namespace) -> None:
    if args.keep_openblas_env or not any(v in os.environ for v in _PINS):
        return
    env = {k: v for k, v in os.environ.items() if k not in _PINS}
    env["MINIDEEP_BENCH_DROPPED"] = ",".join(f"{v}={os.environ[v]}" for v in _PINS if v in os.environ)
    print(f"benchmarks: restarting without {', '.join(v for v in _PINS if v in os.environ)} (see --help)", flush=True)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    args = _parse()
    _restart_without_openblas_pins(args)

    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import torch  # noqa: PLC0415

    import cases  # noqa: PLC0415
    import harness  # noqa: PLC0415
    import models  # noqa: PLC0415
    from harness import Result  # noqa: PLC0415

    import minideep.backend  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    minideep.backend.set_num_threads(args.threads)
    device = args.device
    if device == "gpu":
        from minideep.backend import check_device  # noqa: PLC0415

        try:
            check_device("gpu")
        except ValueError as error:
            sys.exit(f"benchmarks: {error}")
        if not torch.cuda.is_available():
            sys.exit("benchmarks: --device gpu needs PyTorch with CUDA for the comparison")
    rounds = args.rounds or (3 if args.quick else 7)
    syncs = _syncs(device)
    info = harness.machine_info(device)
    info["openblas_env_dropped_for_this_run"] = os.environ.get("MINIDEEP_BENCH_DROPPED", "")
    info["mode"] = "quick" if args.quick else "full"
    info["threads"] = args.threads
    print(f"machine: {info['cpu']}, {info['cores']} cores, numpy {info['numpy']} (OpenBLAS kernel "
          f"{info['openblas_kernel']}), torch {info.get('torch')} ({info.get('torch_threads')} threads), device {device}")
    results: list[Result] = []

    def wanted(name: str) -> bool:
        return args.only in name

    def timed(name: str, group: str, md_fn, torch_fn, target=None, note="", extra=None) -> Result:
        t = harness.compare({"minideep": md_fn, "torch": torch_fn}, rounds=rounds, syncs=syncs,
                            pause_s=0.1 if args.quick else 0.2)
        extra = {**(extra or {}), "minideep_min_s": t["minideep_min"], "torch_min_s": t["torch_min"],
                 "ratio_of_mins": t["minideep_min"] / t["torch_min"]}
        r = Result(name, group, t["minideep"], t["torch"], target, note, extra)
        results.append(r)
        _print_row(r)
        return r

    print(f"\n{'item':44s} {'minideep':>11s} {'pytorch':>11s} {'ratio':>7s} {'(mins)':>7s} {'target':>7s}")
    # --- ops -----------------------------------------------------------------------------
    op_items = [("conv2d", s, 2.0) for s in [cases.FIRST_LAYER, *cases.SHAPES]]
    op_items += [(op, s, None) for op in ("max_pool2d", "avg_pool2d", "batch_norm") for s in cases.SHAPES]
    for op, shape, target in op_items:
        name = f"{op} fwd+bwd {'x'.join(map(str, shape))}"
        if not wanted(name):
            continue
        md_fn, torch_fn, diff = cases.op_case(op, shape, device)
        timed(name, "op", md_fn, torch_fn, target, extra={"max_abs_diff": diff()})
    # --- training steps --------------------------------------------------------------------
    for label, blocks in (("VGG08", 0), ("VGG38", 5)):
        name = f"{label} training step (batch 100, Adam)"
        if wanted(name):
            r = timed(name, "step", models.md_vgg_step(blocks, device=device),
                      models.torch_vgg_step(blocks, device=device), 2.0 if blocks else None)
            if device == "gpu" and blocks:
                r.extra["epoch_estimate_s"] = 500 * r.minideep_s  # CIFAR-100: 50,000 images / 100
                r.note = f"one CIFAR-100 epoch (500 steps) about {500 * r.minideep_s:.0f} s (target: under 60 s)"
                print(f"{'':44s} {r.note}")
    name = "MLP 100x64 step (per-op overhead)"
    if wanted(name) and device == "cpu":
        timed(name, "overhead", models.md_mlp_step(), models.torch_mlp_step(), 3.0)
    # --- memory and the data loader --------------------------------------------------------
    name = "VGG38 step peak memory (RSS growth, MiB)"
    if wanted(name) and device == "cpu":
        mem = {fw: _memory(fw) for fw in ("minideep", "torch")}
        r = Result(name, "memory", mem["minideep"]["growth_mib"], mem["torch"]["growth_mib"], 2.0,
                   "values are MiB, not seconds", {"minideep": mem["minideep"], "torch": mem["torch"]})
        results.append(r)
        _print_row(r, unit="MiB")
    name = "data loader epoch (minideep only)"
    if wanted(name) and (HERE / "bench_loader.py").exists():
        r = _loader(10_000 if args.quick else 50_000, device)
        results.append(r)
        _print_row(r)

    info["load_average_at_end"] = os.getloadavg()
    _write(args.out, device, args.quick, info, results)


def _syncs(device: str) -> dict:
    if device != "gpu":
        return {}
    import cupy  # noqa: PLC0415
    import torch  # noqa: PLC0415

    return {"minideep": cupy.cuda.Device().synchronize, "torch": torch.cuda.synchronize}


def _memory(framework: str) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "memory.py"), "--framework", framework],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loader(n: int, device: str):
    from harness import Result  # noqa: PLC0415

    out = subprocess.run([sys.executable, str(HERE / "bench_loader.py"), "--n", str(n), "--device", device],
                         capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip()
    match = re.search(r":\s*([0-9.]+) s", out.stdout)
    seconds = float(match.group(1)) if match else None
    if seconds is not None and n != 50_000:
        seconds *= 50_000 / n  # scaled to a 50,000-image epoch
    return Result("data loader epoch (minideep only)", "loader", seconds, None, None,
                  f"50,000 CIFAR-sized images, crop+flip+normalize (measured on {n})", {"output": text[-2000:]})


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} MiB" if unit == "MiB" else (f"{value * 1e3:.2f} ms" if value < 10 else f"{value:.2f} s")


def _print_row(r, unit: str = "s") -> None:
    ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
    mins = f"{r.extra['ratio_of_mins']:.2f}x" if "ratio_of_mins" in r.extra else "-"
    target = "" if r.target is None else f"<={r.target:.1f}x" + (" ok" if r.ratio is not None and r.ratio <= r.target else " MISS")
    print(f"{r.name:44s} {_fmt(r.minideep_s, unit):>11s} {_fmt(r.torch_s, unit):>11s} {ratio:>7s} {mins:>7s} {target}", flush=True)


def _write(folder: Path, device: str, quick: bool, info: dict, results: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = device + ("-quick" if quick else "") + ("" if info["threads"] == 2 else f"-{info['threads']}thread")
    payload = {"machine": info, "results": [r.as_dict() for r in results]}
    (folder / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# minideep vs PyTorch ({device}, {info['mode']} run, {info['date']})", "",
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, NumPy {info['numpy']} "
        f"(OpenBLAS kernel {info['openblas_kernel']}), PyTorch {info.get('torch')} "
        f"({info.get('torch_threads')} threads){', GPU ' + info['gpu'] if info.get('gpu') else ''}.", "",
        f"Load average (1, 5, 15 min) at start {_load(info['load_average_at_start'])}, at end "
        f"{_load(info['load_average_at_end'])}: on a shared machine, other processes slow both frameworks "
        "(PyTorch's and OpenBLAS's threads wait for each other), so the ratio of the fastest rounds is given too.", "",
        "| item | minideep (median) | PyTorch (median) | minideep / PyTorch | ratio of fastest rounds | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        unit = "MiB" if r.group == "memory" else "s"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        target = "" if r.target is None else f"<= {r.target:.1f}x " + ("(met)" if r.ratio is not None and r.ratio <= r.target else "(missed)")
        mins = f"{r.extra['ratio_of_mins']:.2f}x" if "ratio_of_mins" in r.extra else "-"
        lines.append(f"| {r.name} | {_fmt(r.minideep_s, unit)} | {_fmt(r.torch_s, unit)} | {ratio} | {mins} | {target} |")
    lines += ["", *[f"- {r.name}: {r.note}" for r in results if r.note]]
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {folder / (stem + '.json')} and {folder / (stem + '.md')}")


if __name__ == "__main__":
    main()
