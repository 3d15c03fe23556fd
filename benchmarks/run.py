"""minideep against PyTorch on this machine: speed of the hot ops, training steps, memory.

    python benchmarks/run.py                 # the full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick         # fewer rounds, smaller loader epoch (2-3 minutes)
    python benchmarks/run.py --only conv     # items whose name contains "conv"
    python benchmarks/run.py --device gpu    # CuPy against PyTorch CUDA (see gpu_check.sh)
    python benchmarks/run.py --threads 2 --strict   # 2 threads only; exit 3 if any item ran under load

Both frameworks run in this one process, interleaved, after a warm-up; each figure is the
median over rounds (see harness.py). Every item runs at each thread count of ``--threads``
(default 1 and 2), both frameworks with the same count. Between timed blocks the harness
samples how many threads of other programs are runnable; an item whose average exceeds the
cores its thread count leaves free is marked "under load" (``--strict`` refuses the run).
The table gives minideep's time, PyTorch's, the ratio minideep / PyTorch against the
issue's targets and the conditions; the same goes to
``benchmarks/results/<device>[-quick][-1thread].json`` and ``.md``. Peak memory is measured in a fresh
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
sys.path.insert(0, str(HERE.parent))
from minideep import blas_env  # noqa: E402  (the pins must go before NumPy loads in the timed process)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7, loader on 10,000 images")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--only", default="", help="run only the items whose name contains this text")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and markdown table")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per item (default 7, quick 3)")
    parser.add_argument("--threads", default="1,2",
                        help="thread counts to run every item at, comma-separated (default 1,2): each framework gets "
                             "the same count (PyTorch's set_num_threads, minideep's set_num_threads)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse the run (exit status 3, results still written and marked) when any item was "
                             "timed under more load than its thread count leaves free")
    parser.add_argument("--keep-openblas-env", action="store_true", help="do not drop OPENBLAS_CORETYPE/L2_SIZE")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    if not args.keep_openblas_env:
        blas_env.restart_without_pins("benchmarks")

    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import torch  # noqa: PLC0415

    import cases  # noqa: PLC0415
    import harness  # noqa: PLC0415
    import models  # noqa: PLC0415
    from harness import Result  # noqa: PLC0415

    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    if not thread_counts or min(thread_counts) < 1:
        sys.exit(f"benchmarks: --threads must list thread counts >= 1, got {args.threads!r}")
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
    under_load = 0
    for threads in thread_counts:
        _set_threads(torch, threads)
        info = harness.machine_info(device)
        info["openblas_env_dropped_for_this_run"] = blas_env.dropped() or ""
        info["mode"] = "quick" if args.quick else "full"
        info["threads"] = {"minideep": threads, "torch": torch.get_num_threads()}
        print(f"\nmachine: {info['cpu']}, {info['cores']} cores, numpy {info['numpy']} (OpenBLAS kernel "
              f"{info['openblas_kernel']}), torch {info.get('torch')}, device {device}; "
              f"threads: minideep {threads}, torch {torch.get_num_threads()}")
        results = _run_items(args, device, rounds, syncs, threads, harness, cases, models, Result)
        info["load_average_at_end"] = os.getloadavg()
        under_load += sum(not r.extra.get("conditions", {}).get("valid", True) for r in results)
        _write(args.out, device, args.quick, info, results)
    if under_load:
        print(f"\nbenchmarks: {under_load} item(s) were timed under load (marked in the tables): "
              "not headline figures; rerun on a quiet machine.")
        if args.strict:
            sys.exit(3)


def _set_threads(torch, threads: int) -> None:
    """Give both frameworks ``threads`` threads (minideep: BLAS and its convolution workers)."""
    import minideep as md  # noqa: PLC0415

    torch.set_num_threads(threads)
    md.set_num_threads(threads)


def _run_items(args, device, rounds, syncs, threads, harness, cases, models, Result) -> list:
    results: list = []
    cores = os.cpu_count() or 1

    def wanted(name: str) -> bool:
        return args.only in name

    def timed(name: str, group: str, md_fn, torch_fn, target=None, note="", extra=None):
        samples: list[int] = []
        before = os.getloadavg()
        t = harness.compare({"minideep": md_fn, "torch": torch_fn}, rounds=rounds, syncs=syncs,
                            pause_s=0.1 if args.quick else 0.2, samples=samples)
        quiet = harness.Quiet(threads, cores, samples, before, os.getloadavg())
        extra = {**(extra or {}), "minideep_min_s": t["minideep_min"], "torch_min_s": t["torch_min"],
                 "ratio_of_mins": t["minideep_min"] / t["torch_min"], "conditions": quiet.as_dict()}
        r = Result(name, group, t["minideep"], t["torch"], target, note, extra)
        results.append(r)
        _print_row(r)
        return r

    print(f"\n{'item':44s} {'minideep':>11s} {'pytorch':>11s} {'ratio':>7s} {'(mins)':>7s} {'target':>9s} conditions")
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
                      models.torch_vgg_step(blocks, device=device), 1.3)
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
        from memory import in_fresh_process  # noqa: PLC0415 - benchmarks/memory.py (no heavy imports)

        mem = {fw: in_fresh_process(fw, threads) for fw in ("minideep", "torch")}
        r = Result(name, "memory", mem["minideep"]["growth_mib"], mem["torch"]["growth_mib"], 1.0,
                   "values are MiB, not seconds", {"minideep": mem["minideep"], "torch": mem["torch"]})
        results.append(r)
        _print_row(r, unit="MiB")
    name = "data loader epoch (minideep only)"
    if wanted(name) and (HERE / "bench_loader.py").exists():
        r = _loader(10_000 if args.quick else 50_000, device)
        results.append(r)
        _print_row(r)
    return results


def _syncs(device: str) -> dict:
    if device != "gpu":
        return {}
    import cupy  # noqa: PLC0415
    import torch  # noqa: PLC0415

    return {"minideep": cupy.cuda.Device().synchronize, "torch": torch.cuda.synchronize}


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


def _vector_units(info: dict) -> str:
    """", vector units avx2, fma, avx512f (PyTorch runs AVX512 code)": what each framework's float32 products can use."""
    units = ", ".join(info.get("cpu_vector_units") or [])
    capability = info.get("torch_cpu_capability")
    return (f", vector units {units}" if units else "") + (f" (PyTorch runs {capability} code)" if capability else "")


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} MiB" if unit == "MiB" else (f"{value * 1e3:.2f} ms" if value < 10 else f"{value:.2f} s")


def _conditions(r) -> str:
    cond = r.extra.get("conditions")
    if cond is None:
        return "-"
    mean = cond["other_runnable_mean"]
    mean = "?" if mean is None else f"{mean:.1f}"
    return ("quiet" if cond["valid"] else "**under load**") + f" (other runnable {mean}, free cores {cond['free_cores']})"


def _print_row(r, unit: str = "s") -> None:
    ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
    mins = f"{r.extra['ratio_of_mins']:.2f}x" if "ratio_of_mins" in r.extra else "-"
    target = "" if r.target is None else f"<={r.target:.1f}x" + (" ok" if r.ratio is not None and r.ratio <= r.target else " MISS")
    print(f"{r.name:44s} {_fmt(r.minideep_s, unit):>11s} {_fmt(r.torch_s, unit):>11s} {ratio:>7s} {mins:>7s} "
          f"{target:>9s} {_conditions(r).replace('**', '')}", flush=True)


def _write(folder: Path, device: str, quick: bool, info: dict, results: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    threads = info["threads"]["minideep"]
    stem = device + ("-quick" if quick else "") + ("" if threads == 2 else f"-{threads}thread")
    timed = [r for r in results if "conditions" in r.extra]
    loaded = [r for r in timed if not r.extra["conditions"]["valid"]]
    payload = {"machine": info, "results": [r.as_dict() for r in results],
               "under_load": [r.name for r in loaded]}
    tmp = folder / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, folder / f"{stem}.json")
    verdict = (f"**{len(loaded)} of {len(timed)} timed items ran under load** (other programs kept more threads "
               "runnable than the free cores): those rows are not headline figures." if loaded else
               f"All {len(timed)} timed items ran on a quiet machine (other programs' runnable threads within the free cores).")
    lines = [
        f"## minideep vs PyTorch ({device}, {info['mode']} run, {threads} thread{'s' if threads > 1 else ''} each, {info['date']})", "",
        f"Machine: {info['cpu']}, {info['cores']} cores{_vector_units(info)}; Python {info['python']}, NumPy {info['numpy']} "
        f"(OpenBLAS kernel {info['openblas_kernel']}), PyTorch {info.get('torch')}"
        f"{', GPU ' + info['gpu'] if info.get('gpu') else ''}. Threads: minideep {threads}, PyTorch "
        f"{info['threads']['torch']}.", "",
        f"Load average (1, 5, 15 min) at start {_load(info['load_average_at_start'])}, at end "
        f"{_load(info['load_average_at_end'])}. {verdict}", "",
        "| item | minideep (median) | PyTorch (median) | minideep / PyTorch | ratio of fastest rounds | target | conditions |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        unit = "MiB" if r.group == "memory" else "s"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        target = "" if r.target is None else f"<= {r.target:.1f}x " + ("(met)" if r.ratio is not None and r.ratio <= r.target else "(missed)")
        mins = f"{r.extra['ratio_of_mins']:.2f}x" if "ratio_of_mins" in r.extra else "-"
        lines.append(f"| {r.name} | {_fmt(r.minideep_s, unit)} | {_fmt(r.torch_s, unit)} | {ratio} | {mins} | {target} | {_conditions(r)} |")
    lines += ["", *[f"- {r.name}: {r.note}" for r in results if r.note]]
    tmp = folder / f"{stem}.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, folder / f"{stem}.md")
    print(f"\nwrote {folder / (stem + '.json')} and {folder / (stem + '.md')}")


if __name__ == "__main__":
    main()
