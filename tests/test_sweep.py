"""minideep.sweep: configurations x seeds as independent jobs, restart, failures, the summary, backends."""
import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from minideep import sweep
from minideep.sweep import Run, config_name, format_summary, grid, load_records, make_runs, run_sweep, summarize


# ---------------------------------------------------------------- tiny jobs (module level: they are pickled)

def score(config, seed):
    """The tiny job's 'validation accuracy': a known function of the configuration and the seed."""
    return 0.1 * config["x"] + 0.01 * seed


def tiny_job(run: Run) -> dict:
    """Counts its executions in its own folder (works across processes), fails where told to."""
    run.work_dir.mkdir(parents=True, exist_ok=True)
    calls = run.work_dir / "calls"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    if run.config.get("fail") and run.seed == 1:
        raise RuntimeError(f"diverged at x={run.config['x']}")
    return {"val_accuracy": score(run.config, run.seed), "test_accuracy": np.float32(0.5), "history": [1, 2]}


def ray_env_job(run: Run) -> dict:
    """The runtime environment the Ray worker ran in."""
    import ray

    return {"runtime_env": ray.get_runtime_context().runtime_env, "val_accuracy": score(run.config, run.seed)}


def threads_job(run: Run) -> dict:
    """How many convolution threads the job's process has."""
    from minideep import backend

    return {"threads": backend.get_num_threads()}


def not_a_dict_job(run: Run):
    return [1, 2, 3]


def calls(out: Path, name: str, seed: int) -> int:
    path = out / name / f"seed{seed}" / "calls"
    return int(path.read_text()) if path.exists() else 0


CONFIGS = {"x=1": {"x": 1}, "x=2": {"x": 2}, "x=3,fail": {"x": 3, "fail": True}}
SEEDS = [0, 1, 2]


def expected_rows():
    rows = {}
    for name, config in CONFIGS.items():
        seeds = [s for s in SEEDS if not (config.get("fail") and s == 1)]
        values = np.array([score(config, s) for s in seeds])
        rows[name] = (len(seeds), len(SEEDS) - len(seeds), values)
    return rows


def check_summary(rows):
    expected = expected_rows()
    assert [r["name"] for r in rows] == list(CONFIGS)
    for row in rows:
        n, failed, values = expected[row["name"]]
        assert row["n"] == n and row["failed"] == failed
        cell = row["val_accuracy"]
        assert cell["mean"] == pytest.approx(values.mean())
        assert cell["std"] == pytest.approx(values.std(ddof=1))
        assert cell["min"] == pytest.approx(values.min()) and cell["max"] == pytest.approx(values.max())
        assert row["test_accuracy"]["mean"] == pytest.approx(0.5) and row["test_accuracy"]["std"] == 0.0


def comparable(rows):
    """Summary rows without the run order of the values (parallel backends finish in any order)."""
    return [{k: ({**v, "values": sorted(v["values"])} if isinstance(v, dict) and "values" in v else v)
             for k, v in row.items() if k != "seeds"} | {"seeds": sorted(row["seeds"])} for row in rows]


# ---------------------------------------------------------------- configurations

def test_grid_is_the_cartesian_product_last_axis_fastest():
    assert grid(lr=[1e-2, 1e-3], batch_size=[50, 100]) == [
        {"lr": 1e-2, "batch_size": 50}, {"lr": 1e-2, "batch_size": 100},
        {"lr": 1e-3, "batch_size": 50}, {"lr": 1e-3, "batch_size": 100}]
    with pytest.raises(TypeError, match="grid: axis 'lr'"):
        grid(lr=0.1)


def test_config_name_is_short_and_file_safe():
    name = config_name({"lr": 1e-3, "weight_decay": 5e-4, "batch_size": 50}, abbreviations={"weight_decay": "wd",
                                                                                            "batch_size": "bs"})
    assert name == "lr=0.001,wd=0.0005,bs=50"
    with pytest.raises(ValueError, match="config_name: keys \\['momentum'\\]"):
        config_name({"lr": 1e-3}, ["momentum"])


def test_make_runs_crosses_configurations_with_seeds(tmp_path):
    runs = make_runs({"a": {"x": np.float32(0.5)}, "b": {"x": 2}}, [0, 7], tmp_path)
    assert [r.key for r in runs] == ["a/seed0", "a/seed7", "b/seed0", "b/seed7"]
    assert runs[0].config == {"x": 0.5} and type(runs[0].config["x"]) is float  # NumPy scalars made JSON-ready
    assert runs[1].path == tmp_path / "a" / "seed7.json" and runs[1].work_dir == tmp_path / "a" / "seed7"


@pytest.mark.parametrize("configs, seeds, message", [
    ({"a b": {}}, [0], "configuration name 'a b'"),
    ({"../up": {}}, [0], "configuration name '../up'"),
    ({"a": {}}, [0, 0], "seeds must be distinct"),
    ({"a": {}}, [], "seeds must be a non-empty list"),
    ({}, [0], "no configurations"),
])
def test_make_runs_rejects_bad_names_and_seeds(tmp_path, configs, seeds, message):
    with pytest.raises(ValueError, match=message):
        make_runs(configs, seeds, tmp_path)


def test_make_runs_rejects_configurations_that_are_not_json(tmp_path):
    with pytest.raises(TypeError, match="configuration 'a' must hold JSON values"):
        make_runs({"a": {"model": object()}}, [0], tmp_path)


# ---------------------------------------------------------------- the local backend

def test_local_sweep_writes_one_file_per_run_and_survives_a_failing_run(tmp_path):
    result = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, log=None)
    assert len(result.ran) == 9 and not result.skipped
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/seed*.json")) == sorted(
        f"{name}/seed{s}.json" for name in CONFIGS for s in SEEDS)
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically: no temporary file left behind
    failed = result.failed
    assert [(r["name"], r["seed"]) for r in failed] == [("x=3,fail", 1)]
    assert failed[0]["error"] == "RuntimeError: diverged at x=3" and "tiny_job" in failed[0]["traceback"]
    ok = json.loads((tmp_path / "x=2" / "seed2.json").read_text())
    assert ok["status"] == "ok" and ok["config"] == {"x": 2} and ok["seed"] == 2
    assert ok["result"]["val_accuracy"] == pytest.approx(0.22) and ok["wall_time_s"] >= 0
    check_summary(summarize(result.records, ["val_accuracy", "test_accuracy"]))


def test_restart_skips_finished_runs_and_retries_failed_ones(tmp_path):
    run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, log=None)
    again = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, log=None)
    assert again.ran == ["x=3,fail/seed1"] and len(again.skipped) == 8
    assert calls(tmp_path, "x=1", 0) == 1 and calls(tmp_path, "x=3,fail", 1) == 2
    kept = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, retry_failed=False, log=None)
    assert kept.ran == [] and calls(tmp_path, "x=3,fail", 1) == 2
    check_summary(summarize(kept.records, ["val_accuracy", "test_accuracy"]))


def test_settings_reach_the_job_but_do_not_identify_the_run(tmp_path):
    seen = []

    def job(run):
        seen.append(dict(run.settings))
        return tiny_job(run)

    run_sweep(job, {"x=1": {"x": 1}}, [0], tmp_path, settings={"progress": True}, log=None)
    again = run_sweep(job, {"x=1": {"x": 1}}, [0], tmp_path, settings={"progress": False}, log=None)
    assert seen == [{"progress": True}] and again.skipped == ["x=1/seed0"]
    assert "progress" not in json.loads((tmp_path / "x=1" / "seed0.json").read_text())["config"]


def test_an_interrupted_sweep_keeps_its_finished_runs(tmp_path):
    def interrupted(run):
        if run.key == "x=2/seed0":
            raise KeyboardInterrupt  # Ctrl-C is not a failed run: the sweep stops
        return tiny_job(run)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(interrupted, CONFIGS, SEEDS, tmp_path, log=None)
    assert sorted(load_records(tmp_path)) == ["x=1/seed0", "x=1/seed1", "x=1/seed2"]
    resumed = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, log=None)
    assert resumed.skipped == ["x=1/seed0", "x=1/seed1", "x=1/seed2"] and len(resumed.ran) == 6


def test_a_results_file_of_another_configuration_is_not_silently_reused(tmp_path):
    run_sweep(tiny_job, {"a": {"x": 1}}, [0], tmp_path, log=None)
    with pytest.raises(ValueError, match="holds a run of configuration \\{'x': 1\\}.*another output folder"):
        run_sweep(tiny_job, {"a": {"x": 2}}, [0], tmp_path, log=None)


def test_a_job_that_cannot_write_its_file_leaves_it_to_the_driver(tmp_path, monkeypatch):
    # On a cluster node without the output folder, the record still comes back and the driver writes it.
    real_write, writes = sweep.write_json_atomic, []

    def read_only_node(path, obj):
        writes.append(path)
        if len(writes) == 1:  # the job's own write, "on the node"
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(sweep, "write_json_atomic", read_only_node)
    result = run_sweep(tiny_job, {"a": {"x": 1}}, [0], tmp_path, log=None)
    record = json.loads((tmp_path / "a" / "seed0.json").read_text())
    assert record["status"] == "ok" and record["written_by_job"].startswith("no (PermissionError")
    assert result.records["a/seed0"]["result"]["val_accuracy"] == pytest.approx(0.1)


def test_a_job_that_returns_no_dict_is_a_failed_run(tmp_path):
    result = run_sweep(not_a_dict_job, {"a": {"x": 1}}, [0], tmp_path, log=None)
    assert result.failed[0]["error"] == "TypeError: the job returned a list, not a dict of results"


def test_progress_lines_name_each_run_and_each_failure(tmp_path):
    lines = []
    run_sweep(tiny_job, CONFIGS, [0, 1], tmp_path, log=lines.append)
    text = "\n".join(lines)
    assert "[sweep] 6 runs to do on this process" in text
    assert "x=3,fail seed 1: FAILED (RuntimeError: diverged at x=3)" in text
    assert "failed: x=3,fail seed 1: RuntimeError: diverged at x=3" in text


def test_process_pool_gives_the_same_summary_as_one_process(tmp_path):
    one = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path / "one", log=None)
    pool = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path / "pool", workers=2, log=None)
    assert len(pool.ran) == 9 and len(pool.failed) == 1
    assert list(pool.records) == list(one.records)  # reported in run order, whatever order they finished in
    metrics = ["val_accuracy", "test_accuracy"]
    assert comparable(summarize(pool.records, metrics)) == comparable(summarize(one.records, metrics))
    assert {r["pid"] for r in pool.records.values()} != {r["pid"] for r in one.records.values()}


def test_pool_processes_share_the_cores_out(tmp_path):
    import os

    from minideep import backend

    before = backend.get_num_threads()
    shared = run_sweep(threads_job, {"a": {"x": 1}}, [0, 1], tmp_path / "auto", workers=2, threads_per_run="auto",
                       log=None)
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert [r["result"]["threads"] for r in shared.records.values()] == [expected, expected]
    assert backend.get_num_threads() == before  # this process keeps its own
    default = run_sweep(threads_job, {"a": {"x": 1}}, [0, 1], tmp_path / "default", workers=2, log=None)
    assert [r["result"]["threads"] for r in default.records.values()] == [before, before]


def test_process_pool_refuses_a_job_it_cannot_send(tmp_path):
    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        run_sweep(lambda run: {}, {"a": {"x": 1}}, [0], tmp_path, workers=2, log=None)


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "slurm"}, "backend must be one of"),
    ({"workers": 0}, "workers must be an int >= 1"),
    ({"gpus_per_run": -1}, "cpus_per_run and gpus_per_run must be >= 0"),
    ({"threads_per_run": 0}, "threads_per_run must be None, 'auto' or an int >= 1"),
])
def test_bad_sweep_options_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f"run_sweep: {message}"):
        run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, log=None, **kwargs)


# ---------------------------------------------------------------- the summary

def test_summary_statistics_over_seeds():
    records = [{"name": "a", "config": {}, "seed": s, "status": "ok", "result": {"acc": v}}
               for s, v in enumerate([0.60, 0.62, 0.58])]
    records.append({"name": "b", "config": {}, "seed": 0, "status": "ok", "result": {"acc": 0.5}})
    records.append({"name": "b", "config": {}, "seed": 1, "status": "failed", "error": "x"})
    a, b = summarize(records, ["acc"])
    assert a["acc"]["mean"] == pytest.approx(0.60) and a["acc"]["std"] == pytest.approx(0.02)
    assert a["acc"]["min"] == pytest.approx(0.58) and a["acc"]["max"] == pytest.approx(0.62)
    assert summarize(records, ["acc"], ddof=0)[0]["acc"]["std"] == pytest.approx(np.std([0.6, 0.62, 0.58]))
    assert b["n"] == 1 and b["failed"] == 1 and math.isnan(b["acc"]["std"])  # one seed: no sample std
    table = format_summary([a, b], ["acc"])
    assert "60.0 ± 2.0" in table and "[58.0, 62.0]" in table and "1 (+1 failed)" in table
    assert sweep.mean_std(b["acc"]) == "50.0"


def test_format_summary_shows_configuration_columns_and_extra_columns(tmp_path):
    result = run_sweep(tiny_job, {"x=1": {"x": 1}}, [0, 1], tmp_path, log=None)
    text = format_summary(summarize(result.records, ["val_accuracy"]), config_keys=["x"],
                          extra={"x=1": {"paper val %": "56.1 ± 0.5"}})
    header = text.splitlines()[0]
    assert header.split()[0] == "x" and "paper val %" in header and "10.5 ± 0.7" in text


# ---------------------------------------------------------------- command line

def test_command_line_options():
    parser = sweep.add_arguments(argparse.ArgumentParser())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(["--backend", "ray", "--address", "10.0.0.1:6379", "--device", "gpu"])
    assert sweep.options_from_args(args) == {"backend": "ray", "workers": 1, "address": "10.0.0.1:6379",
                                             "cpus_per_run": 1, "gpus_per_run": 1}
    local = sweep.options_from_args(parser.parse_args(["--workers", "2"]))
    assert local["backend"] == "local" and local["workers"] == 2 and local["gpus_per_run"] == 0
    with pytest.raises(SystemExit, match="--address is for --backend ray"):
        sweep.options_from_args(parser.parse_args(["--address", "h:1"]))


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match="minideep\\[sweep\\]"):
        run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path, backend="ray", log=None)


# ---------------------------------------------------------------- Ray (a real local instance)

@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_gives_the_same_summary_as_the_local_backend(local_ray, tmp_path):
    local = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path / "local", log=None)
    on_ray = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path / "ray", backend="ray", log=None)
    assert local_ray.is_initialized()  # a Ray instance the caller started is left running
    assert len(on_ray.ran) == 9 and [(r["name"], r["seed"]) for r in on_ray.failed] == [("x=3,fail", 1)]
    assert "diverged at x=3" in on_ray.failed[0]["error"]
    metrics = ["val_accuracy", "test_accuracy"]
    assert comparable(summarize(on_ray.records, metrics)) == comparable(summarize(local.records, metrics))
    assert sorted(load_records(tmp_path / "ray")) == sorted(load_records(tmp_path / "local"))
    again = run_sweep(tiny_job, CONFIGS, SEEDS, tmp_path / "ray", backend="ray", log=None)
    assert again.ran == ["x=3,fail/seed1"] and calls(tmp_path / "ray", "x=1", 0) == 1


@pytest.mark.slow
def test_ray_tasks_ask_ray_for_their_resources(local_ray, tmp_path):
    # Two CPUs in the instance, two per run: Ray runs them one at a time; a GPU request on a
    # machine without one would wait forever, so only CPUs are checked here.
    result = run_sweep(threads_job, {"a": {"x": 1}}, [0, 1], tmp_path, backend="ray", cpus_per_run=2,
                       threads_per_run="auto", log=None)
    assert [r["status"] for r in result.records.values()] == ["ok", "ok"]
    assert [r["result"]["threads"] for r in result.records.values()] == [2, 2]  # threads = the CPUs asked for


@pytest.mark.slow
def test_ray_sweep_starts_its_own_instance_and_ships_minideep_to_the_workers(tmp_path):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    result = run_sweep(ray_env_job, {"a": {"x": 1}}, [0, 1], tmp_path, backend="ray", log=None)
    assert not ray.is_initialized()  # the instance the sweep started is shut down again
    for record in result.records.values():
        assert record["status"] == "ok", record.get("traceback")
        # The package travels as a runtime_env py_modules zip, as it would to the nodes of a cluster.
        modules = record["result"]["runtime_env"]["py_modules"]
        assert len(modules) == 1 and modules[0].startswith("gcs://_ray_pkg_")
