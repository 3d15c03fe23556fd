"""Runs that never lose, mix or misreport results: concurrent runs, changed settings, stale checkpoints,
bad batches, unusable output folders, full disks and bad command lines (issue 22, part B).

Real faults: two real processes into one folder, a real ``kill -9``, a real tmpfs that fills up
(or, where nothing can be mounted, the kernel's own ENOSPC from ``/dev/full``).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minideep as md
from minideep import backend, nn, optim, outlock, results
from minideep.checkpoint import read_metadata
from minideep.data import NonFiniteDataError
from minideep.experiment import Experiment, RunContext
from minideep.ops.loss import cross_entropy
from minideep.outlock import LOCK_NAME
from minideep.train import TrainingDiverged, fit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_threads():
    saved = backend._num_threads
    yield
    backend._num_threads = saved


def _experiment(calls: list, presets: dict | None = None, **fields) -> Experiment:
    def run_variant(ctx: RunContext) -> dict:
        calls.append((ctx.variant, ctx.seed, dict(ctx.config)))
        return {"test_accuracy": 0.5 + ctx.seed / 100}

    base = dict(chapter="99_test", description="test", variants=["a", "b"], run_variant=run_variant,
                presets=presets or {p: {"epochs": 3, "lr": 0.1} for p in ("smoke", "quick", "paper")})
    return Experiment(**{**base, **fields})


def _presets(**changed) -> dict:
    return {p: {"epochs": 3, "lr": 0.1, **changed} for p in ("smoke", "quick", "paper")}


# ------------------------------------------------------------------------------------------
# 1. Two runs into one --out
# ------------------------------------------------------------------------------------------

_CHAPTER = """
import sys, time
from pathlib import Path
from minideep.experiment import Experiment

def run_variant(ctx):
    if ctx.variant == "a":  # a long run: holds the folder until the test lets it go
        (ctx.out / "a-started").write_text("")
        while not (ctx.out / "a-go").exists():
            time.sleep(0.02)
    return {"test_accuracy": {"a": 0.6, "b": 0.7}[ctx.variant]}

EXPERIMENT = Experiment(chapter="99_test", description="test", variants=["a", "b"], run_variant=run_variant,
                        presets={p: {"epochs": 1} for p in ("smoke", "quick", "paper")}).script(__name__)
"""


def _chapter(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "chapter_99.py"
    script.write_text(_CHAPTER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script), "--preset", "smoke", "--out", str(tmp_path / "out"), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_naming_the_first_and_nothing_is_lost(tmp_path):
    first = _chapter(tmp_path, "--variants", "a")
    try:
        _wait_for(lambda: first.poll() is not None or (tmp_path / "out" / "a-started").exists(), "run a to start")
        assert first.poll() is None, first.communicate()
        second = _chapter(tmp_path, "--variants", "b")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 1
        assert f"pid {first.pid} on " in stderr and "in use by another run" in stderr and "--variants a" in stderr
        (tmp_path / "out" / "a-go").write_text("")
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
        first.wait()
    # The refused run, once the folder is free, adds its variant to the finished one.
    third = _chapter(tmp_path, "--variants", "b", "--resume")
    assert third.wait(timeout=60) == 0, third.communicate()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {v: e["test_accuracy"] for v, e in saved["variants"].items()} == {"a": 0.6, "b": 0.7}


@pytest.mark.slow
def test_the_lock_of_a_run_killed_with_sigkill_does_not_block_the_next_run(tmp_path):
    holder = _chapter(tmp_path, "--variants", "a")
    try:
        _wait_for(lambda: holder.poll() is not None or (tmp_path / "out" / "a-started").exists(), "run a to start")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "out" / LOCK_NAME).exists()  # left behind, but no longer held
    calls = []
    _experiment(calls).main(["--preset", "smoke", "--out", str(tmp_path / "out"), "--variants", "b"])
    assert [c[0] for c in calls] == ["b"]


def test_a_run_in_this_process_is_refused_while_another_process_holds_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
            "os.write(fd, b'{\"pid\": %d, \"host\": \"h\", \"started\": \"now\", \"command\": \"other run\"}' % os.getpid()); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        calls = []
        with pytest.raises(SystemExit, match=rf"in use by another run \(pid {holder.pid} on h, started now, command: other run\)"):
            _experiment(calls).main(["--preset", "smoke", "--out", str(out)])
        assert calls == []
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------
# 2. --resume after the settings changed
# ------------------------------------------------------------------------------------------


def test_resume_after_a_change_of_the_presets_settings_is_refused_saying_what_changed(tmp_path):
    args = ["--preset", "smoke", "--out", str(tmp_path), "--variants", "a"]
    _experiment([]).main(args)
    calls = []
    with pytest.raises(SystemExit) as refused:
        _experiment(calls, _presets(epochs=4, lr=0.05)).main([*args, "b", "--resume"])
    message = str(refused.value)
    assert "a seed 0 (results.json): epochs 3 -> 4; lr 0.1 -> 0.05" in message and "--rerun-changed" in message
    assert calls == []
    assert json.loads((tmp_path / "results.json").read_text())["config"]["epochs"] == 3  # untouched


def test_rerun_changed_reruns_what_no_longer_matches_and_keeps_what_does(tmp_path):
    base = ["--preset", "smoke", "--out", str(tmp_path)]
    _experiment([]).main([*base, "--seeds", "0", "1"])
    calls = []
    again = _experiment(calls, _presets(epochs=4)).main([*base, "--seeds", "0", "1", "--resume", "--rerun-changed"])
    assert sorted(c[:2] for c in calls) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert again["config"]["epochs"] == 4
    assert {run["settings"]["config"]["epochs"] for e in again["variants"].values() for run in e["runs"].values()} == {4}
    calls.clear()
    _experiment(calls, _presets(epochs=4)).main([*base, "--seeds", "0", "1", "--resume"])
    assert calls == []  # all finished with the present settings


def test_a_changed_run_outside_the_selection_is_never_mixed_in(tmp_path):
    base = ["--preset", "smoke", "--out", str(tmp_path)]
    _experiment([]).main([*base, "--variants", "a"])
    with pytest.raises(SystemExit, match="not selected in this run.*a seed 0"):
        _experiment([], _presets(batch_size=50)).main([*base, "--variants", "b", "--resume", "--rerun-changed"])


_SWEEP_CHAPTER = """
import os
from minideep.experiment import Experiment

EPOCHS = int(os.environ["EPOCHS"])

def run_variant(ctx):
    return {"test_accuracy": 0.5, "epochs_seen": ctx.config["epochs"]}

EXPERIMENT = Experiment(chapter="99_test", description="test", variants=["a", "b"], run_variant=run_variant,
                        presets={p: {"epochs": EPOCHS} for p in ("smoke", "quick", "paper")}).script(__name__)
"""


@pytest.mark.slow
def test_a_sweep_records_settings_are_checked_on_resume_and_rerun_when_asked(tmp_path):
    script = tmp_path / "chapter_99.py"
    script.write_text(_SWEEP_CHAPTER)
    out = tmp_path / "out"

    def run(epochs: int, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, EPOCHS=str(epochs), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        return subprocess.run([sys.executable, str(script), "--preset", "smoke", "--out", str(out), "--workers", "2",
                               "--threads", "1", *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert run(3).returncode == 0
    assert sorted(p.name for p in (out / "sweep").rglob("seed0.json")) == ["seed0.json", "seed0.json"]
    (out / "results.json").unlink()  # as if the parent was killed after its workers finished
    refused = run(4, "--resume")
    assert refused.returncode == 1 and f"a seed 0 (sweep record {out / 'sweep' / 'a' / 'seed0.json'}): epochs 3 -> 4" in refused.stderr
    assert run(4, "--resume", "--rerun-changed").returncode == 0
    saved = json.loads((out / "results.json").read_text())
    assert {v: e["runs"]["0"]["epochs_seen"] for v, e in saved["variants"].items()} == {"a": 4, "b": 4}
    assert saved["config"]["epochs"] == 4 and saved["sweep"]["ran"] == 2


def test_resume_of_results_made_before_runs_carried_their_settings_compares_the_files_config(tmp_path):
    _experiment([]).main(["--preset", "smoke", "--out", str(tmp_path), "--variants", "a"])
    saved = json.loads((tmp_path / "results.json").read_text())
    for entry in saved["variants"].values():
        for run in entry["runs"].values():
            del run["settings"], run["fingerprint"]
    (tmp_path / "results.json").write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match="epochs 3 -> 5"):
        _experiment([], _presets(epochs=5)).main(["--preset", "smoke", "--out", str(tmp_path), "--resume"])


def _interrupted(calls: list) -> Experiment:
    """Variant a leaves a checkpoint and is interrupted; on its next start it reports what it found."""
    def run_variant(ctx: RunContext) -> dict:
        found = sorted(p.name for p in ctx.checkpoint_dir.iterdir()) if ctx.checkpoint_dir.exists() else []
        calls.append((ctx.variant, ctx.config["epochs"], found))
        if ctx.config["epochs"] == 3:
            (ctx.checkpoint_dir / "last.npz").write_bytes(b"epoch 1 of 3")
            raise KeyboardInterrupt
        return {"test_accuracy": 0.5}
    return run_variant


def test_resume_refuses_an_interrupted_runs_checkpoint_made_with_other_settings(tmp_path):
    calls = []
    args = ["--preset", "smoke", "--out", str(tmp_path), "--variants", "a"]
    with pytest.raises(KeyboardInterrupt):
        _experiment(calls, run_variant=_interrupted(calls)).main(args)
    with pytest.raises(SystemExit, match=r"a seed 0 \(checkpoints in .*a_seed0\): epochs 3 -> 4"):
        _experiment(calls, _presets(epochs=4), run_variant=_interrupted(calls)).main([*args, "--resume"])
    _experiment(calls, _presets(epochs=4), run_variant=_interrupted(calls)).main([*args, "--resume", "--rerun-changed"])
    assert calls[-1] == ("a", 4, ["run.json"])  # started from scratch: the old last.npz is gone


def test_a_fresh_run_does_not_leave_an_earlier_runs_checkpoints_to_be_resumed(tmp_path):
    calls = []
    args = ["--preset", "smoke", "--out", str(tmp_path), "--variants", "a"]
    with pytest.raises(KeyboardInterrupt):
        _experiment(calls, run_variant=_interrupted(calls)).main(args)
    _experiment(calls, _presets(epochs=4), run_variant=_interrupted(calls)).main(args)  # fresh: no --resume
    assert calls[-1] == ("a", 4, ["run.json"])
    owner = json.loads((tmp_path / "checkpoints" / "a_seed0" / "run.json").read_text())
    assert owner["settings"]["config"] == {"epochs": 4, "lr": 0.1}


# ------------------------------------------------------------------------------------------
# 3. A fresh run never names an older run's checkpoint as its own
# ------------------------------------------------------------------------------------------


def _batches(n: int = 4, bad_step: int | None = None, value: float = np.inf) -> list:
    """A user's own list of float batches (no DataLoader), optionally with one bad value."""
    rng = np.random.default_rng(0)
    out = []
    for step in range(n):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        if step == bad_step:
            x[3, 1] = value
        out.append((x, rng.integers(0, 3, 8)))
    return out


def _net(seed: int = 0):
    md.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return net, optim.SGD(net.named_parameters(), lr=0.1)


def _poisoned_at(calls: int):
    count = {"n": 0}

    def loss_fn(outputs, targets):
        count["n"] += 1
        loss = cross_entropy(outputs, targets)
        return loss * float("nan") if count["n"] == calls else loss
    return loss_fn


def test_a_fresh_run_diverging_beside_an_older_runs_checkpoint_does_not_call_it_the_last_good_one(tmp_path):
    net, opt = _net()
    fit(net, opt, _batches(), 2, checkpoint_dir=tmp_path, progress=False, log=None)
    old_id = read_metadata(tmp_path / "last.npz")["run_id"]
    net, opt = _net(1)
    with pytest.raises(TrainingDiverged) as diverged:
        fit(net, opt, _batches(), 2, loss_fn=_poisoned_at(2), checkpoint_dir=tmp_path, progress=False, log=None)
    assert diverged.value.checkpoint is None
    assert "last good checkpoint" not in str(diverged.value) and "is an earlier run's" in str(diverged.value)
    assert read_metadata(tmp_path / "last.npz")["run_id"] == old_id  # still the old run's, untouched


def test_a_run_diverging_after_its_own_checkpoint_names_it(tmp_path):
    net, opt = _net()
    fit(net, opt, _batches(), 1, checkpoint_dir=tmp_path, progress=False, log=None)  # an older run
    net, opt = _net(1)
    with pytest.raises(TrainingDiverged) as diverged:
        fit(net, opt, _batches(), 3, loss_fn=_poisoned_at(6), checkpoint_dir=tmp_path, progress=False, log=None)
    assert diverged.value.checkpoint == tmp_path / "last.npz"
    assert f"the last good checkpoint is {tmp_path / 'last.npz'} (after epoch 1/3)" in str(diverged.value)


def test_a_resumed_run_keeps_its_run_id(tmp_path):
    net, opt = _net()
    fit(net, opt, _batches(), 1, checkpoint_dir=tmp_path, progress=False, log=None)
    first = read_metadata(tmp_path / "last.npz")["run_id"]
    net, opt = _net()
    result = fit(net, opt, _batches(), 2, checkpoint_dir=tmp_path, resume=True, progress=False, log=None)
    assert read_metadata(tmp_path / "last.npz")["run_id"] == first and result.last_checkpoint == tmp_path / "last.npz"


# ------------------------------------------------------------------------------------------
# 4. NaN or inf in a user's own batches is a data error, not a divergence
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_value_in_a_users_own_batches_is_a_data_error_naming_the_step(value):
    net, opt = _net()
    with pytest.raises(NonFiniteDataError) as bad:
        fit(net, opt, _batches(bad_step=2, value=value), 2, progress=False, log=None)
    message = str(bad.value)
    assert "epoch 1/2, step 3/4" in message and "1 NaN/inf values in the inputs (batch rows [3])" in message
    assert "not a divergence" in message and not isinstance(bad.value, TrainingDiverged)


def test_a_non_finite_loss_from_finite_batches_is_still_a_divergence():
    net, opt = _net()
    with pytest.raises(TrainingDiverged, match="step 2/4"):
        fit(net, opt, _batches(), 1, loss_fn=_poisoned_at(2), progress=False, log=None)


# ------------------------------------------------------------------------------------------
# 5. Unusable output folders and full disks
# ------------------------------------------------------------------------------------------


def test_an_out_that_is_a_file_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        calls = []
        with pytest.raises(SystemExit, match=rf"--out {out}: {tmp_path / 'file'} is a file, not a folder"):
            _experiment(calls).main(["--preset", "smoke", "--out", str(out)])
        assert calls == []


def _mount(where: Path, options: str) -> bool:
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder this process cannot write: a read-only tmpfs as root, else a 0555 folder."""
    where = tmp_path / "read-only"
    if os.geteuid() == 0 and _mount(where, "ro,size=1m"):
        yield where
        subprocess.run(["umount", "-l", str(where)], check=False)
        return
    where.mkdir(exist_ok=True)
    where.chmod(0o555)
    if os.access(where, os.W_OK):  # root without mount rights: writes there would succeed, so they fail as on a ro mount
        def read_only_file_system(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder / ".write-test"))
        monkeypatch.setattr(outlock, "_probe", read_only_file_system)
    yield where
    where.chmod(0o755)


def test_a_read_only_out_is_refused_before_anything_runs(read_only):
    calls = []
    with pytest.raises(SystemExit, match=rf"--out {read_only}: cannot write there .*give --out a folder you can write to"):
        _experiment(calls).main(["--preset", "smoke", "--out", str(read_only)])
    assert calls == []


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a real 1 MB tmpfs (as root); elsewhere a folder whose results.json writes hit /dev/full's ENOSPC."""
    where = tmp_path / "small-disk"
    if os.geteuid() == 0 and _mount(where, "size=1m"):
        yield where
        subprocess.run(["umount", "-l", str(where)], check=False)
        return
    where.mkdir(exist_ok=True)
    real = results.create_temp

    def to_dev_full(path):
        if Path(path).name != "results.json":
            return real(path)
        return os.open("/dev/full", os.O_WRONLY), Path(path).with_name(".results.json.never-created.tmp")
    monkeypatch.setattr(results, "create_temp", to_dev_full)
    yield where


def test_a_full_disk_while_writing_results_names_the_file_and_keeps_the_earlier_results(full_disk):
    def run_variant(ctx):
        return {"test_accuracy": 0.5, "history": [float(i) for i in range(200_000)] if ctx.variant == "b" else []}

    out = full_disk / "run"
    with pytest.raises(SystemExit) as stopped:
        _experiment([], run_variant=run_variant).main(["--preset", "smoke", "--out", str(out)])
    message = str(stopped.value)
    assert f"cannot write {out / 'results.json'}: No space left on device" in message and "free some space" in message
    assert "--resume" in message
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    if (out / "results.json").exists():  # the tmpfs held variant a's results: still whole
        assert list(json.loads((out / "results.json").read_text())["variants"]) == ["a"]


def test_write_atomic_names_the_file_on_the_kernels_enospc(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "create_temp",
                        lambda path: (os.open("/dev/full", os.O_WRONLY), tmp_path / ".never-created.tmp"))
    with pytest.raises(results.WriteError) as error:
        results.write_json_atomic(tmp_path / "r.json", {"x": list(range(10_000))})
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / "r.json")
    assert f"cannot write {tmp_path / 'r.json'}: No space left on device" in str(error.value)


# ------------------------------------------------------------------------------------------
# 6. Bad command lines
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "argument --workers: must be at least 1"),
    (["--threads", "0"], "argument --threads: must be at least 1"),
    (["--seeds", "-1"], "argument --seeds/--seed: -1 is out of range: NumPy seeds must be 0 <= seed < 2**32"),
    (["--seeds", "4294967296"], "argument --seeds/--seed: 4294967296 is out of range"),
    (["--seeds", "0", "0"], "argument --seeds: a seed is given twice"),
    (["--cpus-per-run", "-1"], "argument --cpus-per-run: must be >= 0"),
    (["--rerun-changed"], "argument --rerun-changed: only with --resume"),
])
def test_bad_command_lines_are_named_argparse_errors(tmp_path, capsys, argv, message):
    calls = []
    with pytest.raises(SystemExit) as stopped:
        _experiment(calls).main(["--preset", "smoke", "--out", str(tmp_path), *argv])
    assert stopped.value.code == 2 and message in capsys.readouterr().err and calls == []


def test_the_largest_numpy_seed_is_accepted(tmp_path):
    calls = []
    _experiment(calls).main(["--preset", "smoke", "--out", str(tmp_path), "--seeds", str(2**32 - 1), "--variants", "a"])
    assert calls[0][:2] == ("a", 2**32 - 1)


def test_a_bad_batch_read_back_later_on_a_gpu_is_still_named_by_its_own_step(device, monkeypatch):
    # On a GPU the losses are read every GPU_FETCH_EVERY steps: the bad batch is gone by then, its step is not.
    from minideep import train

    monkeypatch.setattr(train, "GPU_FETCH_EVERY", 50)
    net, opt = _net()
    with pytest.raises(NonFiniteDataError, match=r"epoch 1/1, step 2/4 holds .*not a divergence"):
        fit(net, opt, _batches(bad_step=1), 1, device=device, progress=False, log=None)
