"""Real faults: a kill -9 mid-write, a full disk, a dying parent. Nothing is lost or left behind for good."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_data_formats import _isolated, write_food101  # noqa: F401 - _isolated is an autouse fixture

import minideep as md
from minideep import nn, optim, tempfiles
from minideep.checkpoint import load_checkpoint, save_checkpoint
from minideep.data import (
    DataFormatError,
    DataLoader,
    NonFiniteDataError,
    Normalize,
    NotEnoughSpaceError,
    array_cache,
    load_dataset,
)
from minideep.data import chapter_data
from minideep.train import fit

REPO = Path(__file__).resolve().parents[1]


def python(code: str, args: list[str] = (), env_extra: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``python -c code args...`` with this checkout's minideep first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kwargs)


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


# ------------------------------------------------------------------------------------------
# The Food-101 cache: full disks, killed builders, damaged caches
# ------------------------------------------------------------------------------------------


# 3 classes x 3 photos; at 512 px the arrays need 9 x 3 x 512 x 512 = 7.1 MB.
_BIG = 512


@pytest.fixture
def food(tmp_path: Path) -> Path:
    """A tiny extracted ``food-101/`` folder under ``tmp_path/photos``; returns that root."""
    pytest.importorskip("PIL")
    write_food101(tmp_path / "photos")
    return tmp_path / "photos"


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MB tmpfs (needs root and mount rights; skipped elsewhere)."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_food101_cache_without_room_is_refused_before_writing(food, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDEEP_DATA", str(food))
    out = tmp_path / "out"
    monkeypatch.setattr(array_cache.shutil, "disk_usage", lambda path: shutil_usage(total=10**7, free=10**6))
    with pytest.raises(NotEnoughSpaceError) as err:
        load_dataset("food101", data_dir=out, image_size=_BIG, progress=False)
    message = str(err.value)
    assert str(out / "food101" / f"processed-{_BIG}px") in message
    assert f"{9 * 3 * _BIG * _BIG:,} bytes" in message and "1,000,000 bytes" in message and "--data-dir" in message
    assert leftovers(out) == []


def shutil_usage(total: int, free: int):
    import shutil

    return shutil._ntuple_diskusage(total, total - free, free)


_BUILD_ON = f"""
import sys
from minideep.data import array_cache, load_dataset
if sys.argv[2] == "lie":  # the disk fills after the check: say there is room, as a racing writer would
    array_cache.check_free_space = lambda folder, needed, what: None
load_dataset("food101", data_dir=sys.argv[1], image_size={_BIG}, progress=False)
"""


@pytest.mark.parametrize("check", ["honest", "lie"])
def test_food101_cache_on_a_real_full_disk_is_an_error_not_sigbus(food, tmp_path, small_disk, check):
    env = {"MINIDEEP_DATA": str(food), "XDG_CACHE_HOME": str(tmp_path / "xdg"), "MINIDEEP_OFFLINE": "1"}
    build = python(_BUILD_ON, stderr=subprocess.PIPE, text=True, env_extra=env, args=[str(small_disk), check])
    _, stderr = build.communicate(timeout=120)
    assert build.returncode == 1, f"exit {build.returncode} (-7 is SIGBUS): {stderr[-2000:]}"
    assert "NotEnoughSpaceError" in stderr and str(small_disk / "food101") in stderr
    assert ("filled up" if check == "lie" else "are free there") in stderr
    assert leftovers(small_disk) == []


def test_food101_build_removes_part_files_of_dead_builders_only(food, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDEEP_DATA", str(food))
    out = tmp_path / "out" / "food101" / "processed-8px"
    out.mkdir(parents=True)
    dead = dead_pid()
    legacy = out / f"train_images.npy.{dead}.part"  # the name older versions used
    current = out / f".train_images.npy.{dead}@{tempfiles.HOST}.0123abcd.part"
    alive = tempfiles.temp_name(out / "test_images.npy", ".part")  # this process: alive
    for path in (legacy, current, alive):
        path.write_bytes(b"\0" * 100)
    load_dataset("food101", data_dir=tmp_path / "out", image_size=8, progress=False)
    assert not legacy.exists() and not current.exists() and alive.exists()


_SLOW_BUILDER = """
import sys, time
from pathlib import Path
from minideep.data import food101
reader = food101._FolderReader(Path(sys.argv[1]) / "food-101")
photos = reader.photos
def photos_then_hang(wanted):
    yield from photos(wanted)
    time.sleep(600)  # a builder that is killed before it finishes
reader.photos = photos_then_hang
food101._build(reader, Path(sys.argv[2]), 8, False, "test")
"""


@pytest.mark.slow
def test_food101_builder_killed_mid_build_leaves_parts_that_the_next_build_removes(food, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDEEP_DATA", str(food))
    out = tmp_path / "out" / "food101" / "processed-8px"
    builder = python(_SLOW_BUILDER, stderr=subprocess.PIPE, args=[str(food), str(out)])
    try:
        wait_for(lambda: builder.poll() is not None or len(list(out.glob(".*.part"))) == 2, "the builder's .part files")
        assert builder.poll() is None, builder.stderr.read().decode()
        os.kill(builder.pid, signal.SIGKILL)
    finally:
        builder.kill()
        builder.wait()
    assert len(list(out.glob(".*.part"))) == 2 and not (out / "manifest.json").exists()
    train = load_dataset("food101", data_dir=tmp_path / "out", image_size=8, progress=False)
    assert train.images.shape == (6, 3, 8, 8)
    assert not list(out.glob("*.part")) and not list(out.glob(".*.part"))


@pytest.fixture
def built(food, tmp_path, monkeypatch) -> Path:
    """A finished 8 px cache; returns its folder."""
    monkeypatch.setenv("MINIDEEP_DATA", str(food))
    load_dataset("food101", data_dir=tmp_path / "out", image_size=8, progress=False)
    return tmp_path / "out" / "food101" / "processed-8px"


def load_again(built: Path):
    return load_dataset("food101", "train", data_dir=built.parents[1], image_size=8, download=False)


def test_food101_truncated_cache_is_refused_naming_the_file(built):
    images = built / "train_images.npy"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match=rf"{images}.*bytes, the manifest says.*Delete the folder {built}"):
        load_again(built)


def test_food101_cache_changed_after_the_build_is_refused(built):
    images = built / "train_images.npy"
    data = bytearray(images.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only the checksum tells
    images.write_bytes(bytes(data))
    os.utime(images, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(DataFormatError, match=r"changed after it was built \(its SHA-256"):
        load_again(built)


def test_food101_unreadable_manifest_names_its_path(built):
    (built / "manifest.json").write_text('{"format": "minideep-array-cache", "files": {')
    with pytest.raises(DataFormatError, match=rf"{built / 'manifest.json'} is not valid JSON.*Delete the folder"):
        load_again(built)


def test_food101_hand_made_cache_without_manifest_is_refused(tmp_path):
    folder = tmp_path / "out" / "food101" / "processed-8px"
    folder.mkdir(parents=True)
    np.save(folder / "train_images.npy", np.zeros((2, 3, 8, 8), np.uint8))
    np.save(folder / "train_labels.npy", np.array([0, 5]))
    (folder / "info.json").write_text('{"classes": ["a", "b"], "source": "me"}')
    with pytest.raises(DataFormatError, match=rf"{folder}.*no manifest.json.*Delete the folder"):
        load_again(folder)


def test_food101_labels_outside_the_classes_are_refused_even_with_a_matching_manifest(built):
    labels = built / "train_labels.npy"
    np.save(labels, np.array([0, 0, 1, 1, 2, 7]))
    manifest = array_cache.read_manifest(built)
    array_cache.write_manifest(built, list(manifest["files"]), {k: v for k, v in manifest.items() if k not in ("format", "files")})
    with pytest.raises(DataFormatError, match=r"labels 0\.\.7, outside 0\.\.2"):
        load_again(built)


# ------------------------------------------------------------------------------------------
# Bad data: NaN and inf are named as data, never as a divergence, and never pick a best epoch
# ------------------------------------------------------------------------------------------


def float_set(n: int = 40, bad: dict[int, float] | None = None, split: str = "train") -> SimpleNamespace:
    x = np.random.default_rng(0).standard_normal((n, 4))
    for i, value in (bad or {}).items():
        x[i, 2] = value
    return SimpleNamespace(images=x, labels=np.zeros(n, np.int64), name="mine", split=split)


@pytest.mark.parametrize("value, shown", [(np.inf, "inf"), (np.nan, "NaN")])
def test_a_non_finite_image_is_a_data_error_naming_split_and_sample(value, shown):
    with pytest.raises(NonFiniteDataError, match=rf"mine val hold NaN or inf: 2 of 40 samples \(indices 7, 31; sample 7 holds {shown}\).*bad data"):
        DataLoader(float_set(bad={7: value, 31: value}, split="val"), batch_size=8)


def test_many_non_finite_images_are_counted_not_all_listed():
    with pytest.raises(NonFiniteDataError, match=r"12 of 40 samples \(indices 0, 1, 2, 3, 4 and 7 more"):
        DataLoader(float_set(bad={i: np.nan for i in range(12)}), batch_size=8, prefetch=0)


def test_normalize_with_a_zero_or_nan_std_is_refused_when_built():
    for mean, std in (((0.5,), (0.0,)), ((0.5,), (np.nan,)), ((np.nan,), (0.2,))):
        with pytest.raises(ValueError, match="Normalize: mean must be finite and std finite and positive"):
            Normalize(mean, std)


class _NaNInEpoch:
    """Validation batches that are clean except in epoch ``bad_epoch`` (a NaN input then)."""

    def __init__(self, bad_epoch: int) -> None:
        self.bad_epoch, self.epoch = bad_epoch, 0
        self.x = np.random.default_rng(1).standard_normal((8, 4))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        x = self.x.copy()
        if self.epoch == self.bad_epoch:
            x[3, 1] = np.nan
        yield md.Tensor(x), md.Tensor(np.zeros(8, np.int64))


def test_an_epoch_with_a_nan_validation_loss_is_never_the_best(tmp_path):
    md.manual_seed(0)
    net = nn.Linear(4, 3, dtype=np.float64)
    net.bias.data[...] = [-100.0, 0.0, 0.0]  # clean inputs are never class 0: accuracy 0
    train = DataLoader(float_set(), batch_size=8, shuffle=True, seed=0)
    # In epoch 1 the NaN sample's scores are NaN; argmax picks class 0 = the label, so that
    # epoch's accuracy looks best, yet its loss is NaN.
    result = fit(net, optim.SGD(net.named_parameters(), lr=1e-6), train, 3, val_loader=_NaNInEpoch(1),
                 checkpoint_dir=tmp_path, progress=False, log=None)
    assert np.isnan(result.history[1]["val_loss"])
    assert result.best_epoch == 0 and result.best_val_acc == result.history[0]["val_acc"]


def test_a_nan_batch_leaves_the_batchnorm_running_stats_usable():
    md.manual_seed(0)
    clean = np.random.default_rng(0).standard_normal((16, 3, 4, 4))
    bad = clean.copy()
    bad[5, 1, 2, 2] = np.nan  # one value of one channel
    reference, guarded = nn.BatchNorm2d(3, dtype=np.float64), nn.BatchNorm2d(3, dtype=np.float64)
    reference(md.tensor(clean))
    guarded(md.tensor(clean))
    with pytest.warns(RuntimeWarning, match=r"BatchNorm2d\(3\): the batch holds NaN or inf in 1 channel"):
        guarded(md.tensor(bad))
    reference(md.tensor(np.where(np.isnan(bad), 0.0, bad)))  # what channels 0 and 2 should see
    mean, var = guarded.running_mean, guarded.running_var
    assert np.isfinite(mean).all() and np.isfinite(var).all()
    np.testing.assert_allclose(mean[[0, 2]], reference.running_mean[[0, 2]])
    np.testing.assert_allclose(var[[0, 2]], reference.running_var[[0, 2]])
    after_one = nn.BatchNorm2d(3, dtype=np.float64)
    after_one(md.tensor(clean))
    np.testing.assert_allclose(mean[1], after_one.running_mean[1])  # channel 1 kept its value
    guarded.eval()
    assert np.isfinite(guarded(md.tensor(clean)).data).all()


def test_a_finite_batch_updates_batchnorm_without_a_warning():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn(md.tensor(np.random.default_rng(0).standard_normal((4, 2, 3, 3))))
    assert int(bn.num_batches_tracked) == 1 and not np.allclose(bn.running_mean, 0)


# ------------------------------------------------------------------------------------------
# Data folders that are not what they seem
# ------------------------------------------------------------------------------------------


def test_a_folder_where_a_data_file_should_be_is_named(tmp_path):
    folder = tmp_path / "data" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    folder.mkdir(parents=True)
    with pytest.raises(DataFormatError, match=rf"{folder} \(data_dir\) is a folder, but the file train-images-idx3-ubyte.gz .*Move the folder away"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data", download=False)


def test_data_dir_without_dataset_says_that_the_bundled_set_is_used(tmp_path):
    data = chapter_data("auto", "cifar100", "smoke", data_dir=tmp_path / "empty", n_train=20, n_test=10)
    assert data.train.name == "bundled"
    assert f"--data-dir {tmp_path / 'empty'} is not read: the smoke preset uses the bundled set" in data.notice
    assert "--dataset NAME" in data.notice


def test_paper_preset_with_an_empty_data_dir_says_why_it_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDEEP_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    data = chapter_data("auto", "cifar100", "paper", data_dir=tmp_path / "empty", n_train=20, n_test=10)
    assert data.train.name == "bundled"
    assert "cifar100 could not be found" in data.notice and f"nothing usable in --data-dir {tmp_path / 'empty'}" in data.notice


# ------------------------------------------------------------------------------------------
# Sweep workers die with their parent
# ------------------------------------------------------------------------------------------

_SWEEP_PARENT = """
import os, sys, time
from pathlib import Path
from minideep.sweep import run_sweep
import minideep.lifeline
if sys.argv[2] == "watchdog":  # as on a system without PR_SET_PDEATHSIG: the polling thread alone
    minideep.lifeline._set_parent_death_signal = lambda: False
OUT = Path(sys.argv[1])

def job(run):
    (OUT / f"worker-{run.seed}.pid").write_text(str(os.getpid()))
    time.sleep(600)  # a long training run
    return {}

run_sweep(job, {"a": {"x": 1}}, [0, 1], OUT / "sweep", workers=2, log=None)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that never reaps)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("mechanism", ["both", "watchdog"])
def test_sweep_workers_die_when_their_parent_is_killed(tmp_path, mechanism):
    parent = python(_SWEEP_PARENT, args=[str(tmp_path), mechanism], stderr=subprocess.PIPE)
    pids: list[int] = []
    try:
        pid_files = lambda: sorted(tmp_path.glob("worker-*.pid"))  # noqa: E731
        wait_for(lambda: parent.poll() is not None or (len(pid_files()) == 2 and all(p.read_text() for p in pid_files())),
                 "both workers to start their job")
        assert parent.poll() is None, parent.stderr.read().decode()
        pids = [int(p.read_text()) for p in pid_files()]
        assert all(running(pid) for pid in pids)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not any(running(pid) for pid in pids), "the orphaned workers to end")
    finally:
        parent.kill()
        parent.wait()
        for pid in pids:  # a failing run must not leave sleeping workers behind
            if running(pid):
                os.kill(pid, signal.SIGKILL)
