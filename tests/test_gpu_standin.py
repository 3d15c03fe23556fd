"""The CPU stand-in for CuPy (tests/fake_cupy) keeps CuPy's rules, and every chapter runs on it with --device gpu.

The device fixture's ``"gpu"`` variant of the op, layer, optimizer and error tests runs on the
stand-in in every ``python -m pytest``; this file checks the stand-in itself, and runs each
chapter's smoke preset with ``--device gpu`` as a student would (a subprocess), so that a NumPy
call on device data anywhere in the library fails here instead of on a GPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minideep as md
from minideep import backend

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.name for p in (ROOT / "chapters").glob("0*.py"))
FAKE = "fakegpu" in sys.modules

needs_fake = pytest.mark.skipif(not FAKE, reason="checks the CuPy stand-in (python -m pytest without MINIDEEP_DEVICE)")
needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="no CuPy (real or stand-in) with a device")


@pytest.fixture
def cupy():
    if not FAKE:
        pytest.skip("checks the CuPy stand-in (python -m pytest without MINIDEEP_DEVICE)")
    import cupy

    return cupy


def test_the_backend_takes_the_stand_in_for_cupy(cupy):
    x = backend.to_device(np.arange(3.0), "gpu")
    assert isinstance(x, cupy.ndarray) and backend.get_array_module(x) is cupy and backend.device_of(x) == "gpu"
    np.testing.assert_array_equal(backend.as_numpy(x), [0.0, 1.0, 2.0])
    assert md.tensor(x).device == "gpu"


def test_a_device_array_refuses_to_become_a_numpy_array(cupy):
    x = cupy.asarray(np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    assert isinstance(x.get(), np.ndarray) and isinstance(cupy.asnumpy(x), np.ndarray)


@pytest.mark.parametrize("mix", ["x + h", "h + x", "h * x", "cupy.maximum(x, h)", "cupy.where(x > 0, h, x)",
                                 "cupy.concatenate([x, h])", "x.__setitem__(0, h)", "cupy.copyto(h, x)"])
def test_a_numpy_array_mixed_into_a_device_operation_raises(cupy, mix):
    x, h = cupy.asarray(np.ones(3)), np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        eval(mix)


def test_a_numpy_array_updated_in_place_with_device_data_raises(cupy):
    h = np.zeros(3)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        h += cupy.asarray(np.ones(3))


def test_python_and_numpy_scalars_mix_freely(cupy):
    x = cupy.asarray(np.ones(3, dtype=np.float32))
    y = 2 * x + np.float32(1) - 0.5
    assert isinstance(y, cupy.ndarray) and y.dtype == np.float32
    np.testing.assert_array_equal(y.get(), [2.5, 2.5, 2.5])


def test_reductions_give_device_arrays_not_scalars(cupy):
    x = cupy.asarray(np.arange(4.0))
    for r in (x.sum(), cupy.max(x), x.mean(), cupy.argmax(x)):
        assert isinstance(r, cupy.ndarray) and r.shape == ()


def test_integer_array_indices_wrap_around_as_in_cupy(cupy):
    x = cupy.asarray(np.arange(3.0))
    np.testing.assert_array_equal(x[cupy.asarray(np.array([0, 3, -4]))].get(), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(x[[0, 3]].get(), [0.0, 0.0])
    np.testing.assert_array_equal(cupy.take(x, cupy.asarray(np.array([4]))).get(), [1.0])
    with pytest.raises(IndexError):
        x[3]  # a plain integer is still checked


def test_elementwise_results_are_c_ordered(cupy):
    x = cupy.asarray(np.ones((3, 4))).T
    assert not x.flags.c_contiguous
    assert (x * 2).flags.c_contiguous and cupy.exp(x).flags.c_contiguous


def test_only_names_that_cupy_has_are_there(cupy):
    for name in ("lib", "random", "fuse", "asnumpy", "get_array_module", "ascontiguousarray", "add"):
        assert hasattr(cupy, name)
    for missing in ("float_power_of_ten", "asmatrix", "lookfor", "nditer", "frompyfunc"):
        assert not hasattr(cupy, missing)
    assert not hasattr(cupy.asarray(np.ones(2)), "itemset")


def test_the_stand_in_counts_launches_and_synchronisations(cupy):
    import fakegpu

    x = cupy.asarray(np.ones((2, 3)))
    with fakegpu.counting() as c:
        y = (x * 2 + 1).reshape(3, 2)  # two kernels; the reshape is a view
        float(y.sum())  # one more kernel, one read back
    assert c == {"launches": 3, "syncs": 1, "uploads": 0}


# --- lean on a GPU: what a step costs, counted under the stand-in ---------------------------------


def _tiny_fit(steps: int, fetch_every: int, monkeypatch) -> dict[str, int]:
    import fakegpu

    from minideep import nn, optim, train
    from minideep.data.loader import DataLoader

    monkeypatch.setattr(train, "GPU_FETCH_EVERY", fetch_every)
    rng = np.random.default_rng(0)
    data = type("Data", (), {"images": rng.standard_normal((4 * steps, 6)).astype(np.float32),
                             "labels": rng.integers(0, 3, 4 * steps)})()
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, momentum=None), nn.ReLU(), nn.Linear(5, 3))
    loader = DataLoader(data, batch_size=4, device="gpu", prefetch=0)
    opt = optim.Adam(model.named_parameters(), lr=0.01)
    with fakegpu.counting() as c:
        train.fit(model, opt, loader, 1, device="gpu", progress=False, log=None)
    return c


@needs_fake
def test_a_training_epoch_on_the_gpu_reads_back_once_per_fetch_not_once_per_step(monkeypatch):
    # Each fetch of the metrics is one read back; no step (loss, accuracy, cross-entropy's
    # target check, BatchNorm's momentum=None, Adam) waits for the device on its own.
    short, long = _tiny_fit(3, 100, monkeypatch), _tiny_fit(9, 100, monkeypatch)
    assert short["syncs"] == long["syncs"]
    assert _tiny_fit(9, 3, monkeypatch)["syncs"] == long["syncs"] + 2  # three fetches instead of one


@needs_fake
def test_adam_on_the_gpu_is_one_kernel_per_parameter_and_step(cupy):
    import fakegpu

    from minideep import optim

    params = [(n, md.tensor(cupy.asarray(np.ones(s)), requires_grad=True)) for n, s in (("a", (3, 4)), ("b", (4,)))]
    for amsgrad, kernels in ((False, 1), (True, 16)):  # AMSGrad keeps the one-operation-at-a-time path
        opt = optim.Adam(params, lr=0.1, weight_decay=0.01, amsgrad=amsgrad)
        for _ in range(2):
            for _, p in params:
                p.grad = cupy.asarray(np.full(p.shape, 0.5))
            with fakegpu.counting() as c:
                opt.step()
        assert c == {"launches": kernels * len(params), "syncs": 0, "uploads": 0}


@needs_fake
def test_gaussian_noise_draws_from_one_device_generator_per_host_generator(cupy):
    from minideep.data import transforms as T

    x = cupy.zeros((2, 1, 3, 3), dtype=np.float32)
    gen = np.random.default_rng(0)
    first, second = T.gaussian_noise(x, 1.0, gen), T.gaussian_noise(x, 1.0, gen)
    assert T._device_generator(gen, cupy) is T._device_generator(gen, cupy)
    assert not np.array_equal(first.get(), second.get())  # the stream goes on, batch after batch
    again = np.random.default_rng(0)
    np.testing.assert_array_equal(T.gaussian_noise(x, 1.0, again).get(), first.get())  # reproducible


@needs_fake
def test_device_targets_out_of_range_make_the_loss_nan_instead_of_a_read_back(cupy):
    import fakegpu

    import minideep.nn.functional as F

    logits = md.tensor(cupy.asarray(np.zeros((3, 4))), requires_grad=True)
    with fakegpu.counting() as c:
        good = F.cross_entropy(logits, cupy.asarray(np.array([0, 3, 1])))
        bad = F.cross_entropy(logits, cupy.asarray(np.array([0, 4, 1])))  # CuPy would wrap 4 to 0
    assert c["syncs"] == 0
    assert good.item() == pytest.approx(np.log(4)) and np.isnan(bad.item())
    with pytest.raises(ValueError, match="target contains class 4"):  # a host target is still checked
        F.cross_entropy(logits, [0, 4, 1])


@needs_gpu
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_runs_its_smoke_preset_on_the_gpu(chapter, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(ROOT / "chapters" / chapter), "--preset", "smoke", "--device", "gpu",
                           "--out", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["device"] == "gpu"
    if FAKE:
        assert results["versions"]["cupy"].endswith("+fakegpu")


@needs_fake
def test_the_gpu_check_script_parses_and_its_dry_run_writes_every_result_to_the_given_folder(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "MINIDEEP_DEVICE"}
    done = subprocess.run(["bash", str(script), "--dry-run", str(tmp_path), "00", "06"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert "DRY RUN" in summary[0] and [line.split()[:3] for line in summary[1:]] == [
        ["00", "environment", "rc=0"], ["06", "bench-torch", "rc=0"]]
    assert "cupy 14.2.0+fakegpu" in (tmp_path / "00-environment.log").read_text()
